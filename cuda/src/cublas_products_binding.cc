// The products of device tensors through cuBLAS (fp32, pedantic: no TF32), each with the
// contract of its CPU kernel (src/tensor/kernels/Kernels.ts), so that an op's code serves host
// and device alike (src/tensor/device/CudaRuntime.ts):
//
//   matmul(a, b, out, batch, m, n, k, transA, transB, strideA, strideB, accumulate)
//       Cpu.MatmulArgs: out[i] (+)= op(a[i]) op(b[i]) for each of `batch` entries, a entry i at
//       i * strideA, b at i * strideB (0: one matrix for all), out [batch, m, n]
//   groupedRows(a, b, out, rows, k, n, transB)
//       the expert GEMM: a [N, k] in groups of rows[g] (Int32Array), b [G, k, n] ([G, n, k]
//       with transB), out[group g] = a[group g] op(b[g]), out [N, n]
//   groupedWeights(a, c, out, rows, m, n, accumulate)
//       the experts' weight gradients: out[g] (+)= a[group g]^T c[group g], a [N, m], c [N, n],
//       out [G, m, n]; an empty group's out[g] is zeros (unchanged when accumulating)
//
// Each takes a last, optional argument `bf16` (default false): true runs the products of a bf16
// run as bf16 GEMMs, the two operands rounded to bfloat16 (to nearest even: the host's bf16
// GEMM's rounding) into scratch copies first, fp32 accumulation and output (tensor cores; the
// sums in cuBLAS's order, so within fp32 rounding of the host's, not its bits).
//
// Arrays are Float32Arrays or, as device tensors pass them, device arrays (used in place:
// device_array_binding.cc). Argument errors are TypeErrors / RangeErrors before any device work;
// without a GPU "no device: ..."; before cublasLoad an Error saying so. An empty sum (k = 0, an
// empty group) writes zeros, or leaves out as it is when accumulating.
#include "cublas_products_binding.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bf16_operands.h"
#include "cublas_binding.h"
#include "device_staging.h"
#include "napi_args.h"

namespace pleat {

namespace {

constexpr double kMaxDim = 2147483647.0;

// The optional last argument `bf16` at `index` (absent: false); false with a pending TypeError.
bool optional_bf16(const Napi::CallbackInfo& info, const char* fn, size_t index, bool* bf16) {
  *bf16 = false;
  return info.Length() <= index || info[index].IsUndefined() || expect_bool(info, fn, index, "bf16", bf16);
}

// C[m, n] (+)= op(A) op(B) on `s`, or the empty sum when k = 0.
cudaError_t product(CublasApi* api, cudaStream_t s, bool bf16, bool trans_a, bool trans_b, const void* a, const void* b, float* c, size_t m, size_t n, size_t k,
                    bool accumulate) {
  if (m * n == 0) return cudaSuccess;
  if (k == 0) return accumulate ? cudaSuccess : cudaMemsetAsync(c, 0, m * n * sizeof(float), s);
  return status_of(gemm_row_major_ex(api, s, bf16, trans_a, trans_b, a, b, c, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), accumulate ? 1.0f : 0.0f));
}

// The group sizes: non-negative, their sum in `total`; false with a pending RangeError.
bool read_groups(Napi::Env env, const char* fn, const ArrayArg& rows, std::vector<size_t>* sizes, size_t* total) {
  *total = 0;
  for (size_t g = 0; g < rows.length; ++g) {
    const int32_t r = rows.i32()[g];
    if (r < 0) return throw_range_error(env, std::string(fn) + ": rows[" + std::to_string(g) + "] = " + std::to_string(r) + " is negative");
    sizes->push_back(static_cast<size_t>(r));
    *total += static_cast<size_t>(r);
  }
  return true;
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* fn = "matmul";
  Napi::Env env = info.Env();
  ArrayArg a, b, out;
  size_t batch = 0, m = 0, n = 0, k = 0, stride_a = 0, stride_b = 0;
  bool trans_a = false, trans_b = false, accumulate = false;
  if (!expect_array(info, fn, 0, "a", {napi_float32_array}, &a) || !expect_array(info, fn, 1, "b", {napi_float32_array}, &b) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_size(info, fn, 3, "batch", &batch) || !expect_size(info, fn, 4, "m", &m, kMaxDim) ||
      !expect_size(info, fn, 5, "n", &n, kMaxDim) || !expect_size(info, fn, 6, "k", &k, kMaxDim) || !expect_bool(info, fn, 7, "transA", &trans_a) ||
      !expect_bool(info, fn, 8, "transB", &trans_b) || !expect_size(info, fn, 9, "strideA", &stride_a) || !expect_size(info, fn, 10, "strideB", &stride_b) ||
      !expect_bool(info, fn, 11, "accumulate", &accumulate))
    return env.Undefined();
  bool bf16 = false;
  if (!optional_bf16(info, fn, 12, &bf16)) return env.Undefined();
  const size_t last = batch == 0 ? 0 : batch - 1;
  if (out.length != batch * m * n || (batch > 0 && (a.length < last * stride_a + m * k || b.length < last * stride_b + k * n))) {
    throw_range_error(env, std::string(fn) + ": out needs batch * m * n elements, a (batch - 1) * strideA + m * k, b (batch - 1) * strideB + k * n");
    return env.Undefined();
  }
  CublasApi* api = cublas_for(env, fn);
  if (api == nullptr) return env.Undefined();
  const ArrayArg a16 = bf16_scratch(bf16, a.length), b16 = bf16_scratch(bf16, b.length);
  run_on_device(info, fn, {{&a, Way::in}, {&b, Way::in}, {&out, accumulate ? Way::in_out : Way::out}, {bf16 ? &a16 : nullptr, Way::scratch}, {bf16 ? &b16 : nullptr, Way::scratch}},
                [&](const DevicePointers& d, cudaStream_t s) {
    Operands o;
    if (cudaError_t e = operands_of(d, s, bf16, a.length, b.length, &o); e != cudaSuccess) return e;
    for (size_t i = 0; i < batch; ++i)
      if (cudaError_t e = product(api, s, bf16, trans_a, trans_b, o.at(o.a, i * stride_a), o.at(o.b, i * stride_b), d.f32(2) + i * m * n, m, n, k, accumulate);
          e != cudaSuccess)
        return e;
    return cudaSuccess;
  });
  return env.Undefined();
}

Napi::Value GroupedRows(const Napi::CallbackInfo& info) {
  const char* fn = "groupedRows";
  Napi::Env env = info.Env();
  ArrayArg a, b, out, rows;
  size_t k = 0, n = 0;
  bool trans_b = false;
  if (!expect_array(info, fn, 0, "a", {napi_float32_array}, &a) || !expect_array(info, fn, 1, "b", {napi_float32_array}, &b) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_array(info, fn, 3, "rows", {napi_int32_array}, &rows) ||
      !expect_size(info, fn, 4, "k", &k, kMaxDim) || !expect_size(info, fn, 5, "n", &n, kMaxDim) || !expect_bool(info, fn, 6, "transB", &trans_b))
    return env.Undefined();
  bool bf16 = false;
  if (!optional_bf16(info, fn, 7, &bf16)) return env.Undefined();
  std::vector<size_t> sizes;
  size_t total = 0;
  if (!read_groups(env, fn, rows, &sizes, &total)) return env.Undefined();
  if (a.length != total * k || b.length != sizes.size() * k * n || out.length != total * n) {
    throw_range_error(env, std::string(fn) + ": a needs sum(rows) * k elements, b rows.length * k * n, out sum(rows) * n");
    return env.Undefined();
  }
  CublasApi* api = cublas_for(env, fn);
  if (api == nullptr) return env.Undefined();
  const ArrayArg a16 = bf16_scratch(bf16, a.length), b16 = bf16_scratch(bf16, b.length);
  run_on_device(info, fn, {{&a, Way::in}, {&b, Way::in}, {&out, Way::out}, {bf16 ? &a16 : nullptr, Way::scratch}, {bf16 ? &b16 : nullptr, Way::scratch}}, [&](const DevicePointers& d, cudaStream_t s) {
    Operands o;
    if (cudaError_t e = operands_of(d, s, bf16, a.length, b.length, &o); e != cudaSuccess) return e;
    size_t row = 0;
    for (size_t g = 0; g < sizes.size(); ++g) {
      if (cudaError_t e = product(api, s, bf16, false, trans_b, o.at(o.a, row * k), o.at(o.b, g * k * n), d.f32(2) + row * n, sizes[g], n, k, false); e != cudaSuccess)
        return e;
      row += sizes[g];
    }
    return cudaSuccess;
  });
  return env.Undefined();
}

Napi::Value GroupedWeights(const Napi::CallbackInfo& info) {
  const char* fn = "groupedWeights";
  Napi::Env env = info.Env();
  ArrayArg a, c, out, rows;
  size_t m = 0, n = 0;
  bool accumulate = false;
  if (!expect_array(info, fn, 0, "a", {napi_float32_array}, &a) || !expect_array(info, fn, 1, "c", {napi_float32_array}, &c) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_array(info, fn, 3, "rows", {napi_int32_array}, &rows) ||
      !expect_size(info, fn, 4, "m", &m, kMaxDim) || !expect_size(info, fn, 5, "n", &n, kMaxDim) || !expect_bool(info, fn, 6, "accumulate", &accumulate))
    return env.Undefined();
  bool bf16 = false;
  if (!optional_bf16(info, fn, 7, &bf16)) return env.Undefined();
  std::vector<size_t> sizes;
  size_t total = 0;
  if (!read_groups(env, fn, rows, &sizes, &total)) return env.Undefined();
  if (a.length != total * m || c.length != total * n || out.length != sizes.size() * m * n) {
    throw_range_error(env, std::string(fn) + ": a needs sum(rows) * m elements, c sum(rows) * n, out rows.length * m * n");
    return env.Undefined();
  }
  CublasApi* api = cublas_for(env, fn);
  if (api == nullptr) return env.Undefined();
  const ArrayArg a16 = bf16_scratch(bf16, a.length), c16 = bf16_scratch(bf16, c.length);
  run_on_device(info, fn, {{&a, Way::in}, {&c, Way::in}, {&out, accumulate ? Way::in_out : Way::out}, {bf16 ? &a16 : nullptr, Way::scratch}, {bf16 ? &c16 : nullptr, Way::scratch}},
                [&](const DevicePointers& d, cudaStream_t s) {
    Operands o;
    if (cudaError_t e = operands_of(d, s, bf16, a.length, c.length, &o); e != cudaSuccess) return e;
    size_t row = 0;
    for (size_t g = 0; g < sizes.size(); ++g) {
      // out[g] [m, n] = a[group]^T (stored [r, m]: transposed) c[group] ([r, n]), r the inner dim.
      if (cudaError_t e = product(api, s, bf16, true, false, o.at(o.a, row * m), o.at(o.b, row * n), d.f32(2) + g * m * n, m, n, sizes[g], accumulate);
          e != cudaSuccess)
        return e;
      row += sizes[g];
    }
    return cudaSuccess;
  });
  return env.Undefined();
}

}  // namespace

void RegisterCublasProductExports(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("groupedRows", Napi::Function::New(env, GroupedRows, "groupedRows"));
  exports.Set("groupedWeights", Napi::Function::New(env, GroupedWeights, "groupedWeights"));
}

}  // namespace pleat
