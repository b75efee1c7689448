// GEMMs through cuBLAS (dlopen'ed: device/cublas_api.h) on host arrays, with the CPU GEMM's
// row-major layout so each can be checked against it:
//
//   cublasLoad(path)                          loads cuBLAS once (a file or a name dlopen finds);
//                                             { loaded: true, path } or { loaded: false, error }
//   gemm(a, b, out, m, n, k, bf16)            out[m, n] = a[m, k] b[k, n]; Float32Arrays
//   groupedGemm(a, b, out, counts, k, n, bf16) the expert GEMM: a's rows in groups of counts[e]
//                                             (Int32Array, sum = rows), b [E, k, n], out[group e]
//                                             = a[group e] b[e]
//   (the products device tensors run on, with the CPU kernels' contracts: cublas_products_binding.cc)
//
// bf16: a and b are rounded to bfloat16 on the device (bf16.h's rounding) and multiplied on
// tensor cores with fp32 accumulation; else float32 throughout (pedantic: no TF32). Both return
// the device milliseconds of the multiplication alone (events around it: no copies). Argument
// errors are TypeErrors / RangeErrors before any device work; without a GPU "no device: ...";
// before cublasLoad an Error saying so.
#include "cublas_binding.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bf16_operands.h"
#include "device/cublas_api.h"
#include "device_staging.h"
#include "kernels/ops_cuda.h"
#include "napi_args.h"

namespace pleat {

// The loaded cuBLAS, or null with a pending Error naming `fn` (after the device check: without
// a GPU the error is "no device").
CublasApi* cublas_for(Napi::Env env, const char* fn) {
  if (device_memory(env) == nullptr) return nullptr;
  CublasApi* api = loaded_cublas();
  if (api == nullptr) Napi::Error::New(env, std::string(fn) + ": cuBLAS is not loaded (call cublasLoad(path) first)").ThrowAsJavaScriptException();
  return api;
}

cudaError_t status_of(int cublas_status) { return cublas_status == cublas::kSuccess ? cudaSuccess : cudaErrorUnknown; }

namespace {

Napi::Value CublasLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw_type_error(env, "cublasLoad: path must be a string, got " + describe(info[0]));
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  std::string why;
  CublasApi* api = load_cublas(info[0].As<Napi::String>().Utf8Value(), &why);
  out.Set("loaded", Napi::Boolean::New(env, api != nullptr));
  if (api != nullptr) out.Set("path", Napi::String::New(env, api->path));
  else out.Set("error", Napi::String::New(env, why));
  return out;
}

// Times `work` on `s` with a pair of events; the milliseconds, or -1 when an event failed.
template <typename Work>
cudaError_t timed(cudaStream_t s, float* ms, const Work& work) {
  cudaEvent_t start = nullptr, stop = nullptr;
  *ms = -1;
  if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) return cudaErrorUnknown;
  cudaEventRecord(start, s);
  cudaError_t err = work();
  cudaEventRecord(stop, s);
  if (err == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess) cudaEventElapsedTime(ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return err;
}


Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* fn = "gemm";
  Napi::Env env = info.Env();
  ArrayArg a, b, out;
  size_t m = 0, n = 0, k = 0;
  bool bf16 = false;
  const double max_dim = 2147483647.0;
  if (!expect_array(info, fn, 0, "a", {napi_float32_array}, &a) || !expect_array(info, fn, 1, "b", {napi_float32_array}, &b) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_size(info, fn, 3, "m", &m, max_dim) ||
      !expect_size(info, fn, 4, "n", &n, max_dim) || !expect_size(info, fn, 5, "k", &k, max_dim) || !expect_bool(info, fn, 6, "bf16", &bf16))
    return env.Undefined();
  if (a.length != m * k || b.length != k * n || out.length != m * n) {
    throw_range_error(env, std::string(fn) + ": a needs m * k elements, b k * n, out m * n");
    return env.Undefined();
  }
  CublasApi* api = cublas_for(env, fn);
  if (api == nullptr) return env.Undefined();
  const ArrayArg a16 = bf16_scratch(bf16, a.length), b16 = bf16_scratch(bf16, b.length);
  float ms = -1;
  run_on_device(info, fn, {{&a, Way::in}, {&b, Way::in}, {&out, Way::out}, {bf16 ? &a16 : nullptr, Way::scratch}, {bf16 ? &b16 : nullptr, Way::scratch}},
                [&](const DevicePointers& d, cudaStream_t s) {
                  if (m * n == 0) return cudaMemsetAsync(d.f32(2), 0, out.bytes(), s);
                  Operands o;
                  if (cudaError_t e = operands_of(d, s, bf16, a.length, b.length, &o); e != cudaSuccess) return e;
                  return timed(s, &ms, [&] { return status_of(gemm_row_major(api, s, bf16, o.a, o.b, d.f32(2), static_cast<int>(m), static_cast<int>(n), static_cast<int>(k))); });
                });
  if (env.IsExceptionPending()) return env.Undefined();
  return Napi::Number::New(env, ms);
}

Napi::Value GroupedGemm(const Napi::CallbackInfo& info) {
  const char* fn = "groupedGemm";
  Napi::Env env = info.Env();
  ArrayArg a, b, out, counts;
  size_t n = 0, k = 0;
  bool bf16 = false;
  const double max_dim = 2147483647.0;
  if (!expect_array(info, fn, 0, "a", {napi_float32_array}, &a) || !expect_array(info, fn, 1, "b", {napi_float32_array}, &b) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_array(info, fn, 3, "counts", {napi_int32_array}, &counts) ||
      !expect_size(info, fn, 4, "k", &k, max_dim) || !expect_size(info, fn, 5, "n", &n, max_dim) || !expect_bool(info, fn, 6, "bf16", &bf16))
    return env.Undefined();
  size_t rows = 0;
  for (size_t e = 0; e < counts.length; ++e) {
    const int32_t c = counts.i32()[e];
    if (c < 0) {
      throw_range_error(env, std::string(fn) + ": counts[" + std::to_string(e) + "] = " + std::to_string(c) + " is negative");
      return env.Undefined();
    }
    rows += static_cast<size_t>(c);
  }
  if (a.length != rows * k || b.length != counts.length * k * n || out.length != rows * n) {
    throw_range_error(env, std::string(fn) + ": a needs sum(counts) * k elements, b counts.length * k * n, out sum(counts) * n");
    return env.Undefined();
  }
  CublasApi* api = cublas_for(env, fn);
  if (api == nullptr) return env.Undefined();
  const ArrayArg a16 = bf16_scratch(bf16, a.length), b16 = bf16_scratch(bf16, b.length);
  const std::vector<int32_t> sizes(counts.i32(), counts.i32() + counts.length);
  float ms = -1;
  run_on_device(info, fn, {{&a, Way::in}, {&b, Way::in}, {&out, Way::out}, {bf16 ? &a16 : nullptr, Way::scratch}, {bf16 ? &b16 : nullptr, Way::scratch}},
                [&](const DevicePointers& d, cudaStream_t s) {
                  if (rows * n == 0) return cudaSuccess;
                  Operands o;
                  if (cudaError_t e = operands_of(d, s, bf16, a.length, b.length, &o); e != cudaSuccess) return e;
                  return timed(s, &ms, [&] {
                    size_t row = 0;
                    for (size_t e = 0; e < sizes.size(); ++e) {
                      const size_t r = static_cast<size_t>(sizes[e]);
                      if (r > 0) {
                        const int st = gemm_row_major(api, s, bf16, o.at(o.a, row * k), o.at(o.b, e * k * n), d.f32(2) + row * n, static_cast<int>(r),
                                                      static_cast<int>(n), static_cast<int>(k));
                        if (st != cublas::kSuccess) return status_of(st);
                      }
                      row += r;
                    }
                    return cudaSuccess;
                  });
                });
  if (env.IsExceptionPending()) return env.Undefined();
  return Napi::Number::New(env, ms);
}

}  // namespace

void RegisterCublasExports(Napi::Env env, Napi::Object exports) {
  exports.Set("cublasLoad", Napi::Function::New(env, CublasLoad, "cublasLoad"));
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("groupedGemm", Napi::Function::New(env, GroupedGemm, "groupedGemm"));
}

}  // namespace pleat
