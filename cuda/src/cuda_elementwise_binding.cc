// The element-wise CUDA kernels (kernels/elementwise_cuda.h) with the CPU addon's signatures
// (src/native/CpuElementwise.ts), on float32 host arrays (staged through device memory, waited
// for) or device arrays (used in place):
//
//   elementwiseBinary(op, kind, a, b, out, width)   op 0-3 add sub mul div; kind 0 same, 1 suffix
//                  (b has width elements), 2 rows (b has a.length / width)
//   elementwiseScale(a, s, out)                     out = float(double(a) * s)
//   sumRows(g, out, width)                          out[r] = the double sum of row r
//   sumSuffix(g, out, width)                        out[j] = the float sum over i % width == j
//   narrowToFloat32(src, out)                       float64 src into float32 out, rounded to
//                                                   nearest even (Float32Array.prototype.set)
//   swapDims(src, out, a, n0, b, n1, c)             a transpose: out [a, n1, b, n0, c] from src
//                                                   [a, n0, b, n1, c] (SwapDims.swapInto)
//   roundBf16(src, out)                             out = src rounded to bfloat16, kept in float32
//                                                   (bf16.h's rule, bit for bit); out may be the
//                                                   very same array as src (in place), no other
//                                                   overlap
//   sumSquares(x, out, at)                          out[at] (Float64Array) = the float64 sum of
//                                                   x[i]^2 in sum_squares_element.h's block order
// Wrong types or lengths are TypeErrors / RangeErrors before any device work; without a GPU every
// call throws "no device: ...".
#include "cuda_elementwise_binding.h"

#include <cuda_runtime.h>

#include <string>

#include "device_staging.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/sum_squares_cuda.h"
#include "napi_args.h"

namespace pleat {

namespace {

Napi::Value Binary(const Napi::CallbackInfo& info) {
  const char* fn = "elementwiseBinary";
  Napi::Env env = info.Env();
  double op = 0, kind = 0, width = 0;
  ArrayArg a, b, out;
  if (!expect_number(info, fn, 0, "op", &op) || !expect_number(info, fn, 1, "kind", &kind) ||
      !expect_array(info, fn, 2, "a", {napi_float32_array}, &a) || !expect_array(info, fn, 3, "b", {napi_float32_array}, &b) ||
      !expect_array(info, fn, 4, "out", {napi_float32_array}, &out) || !expect_number(info, fn, 5, "width", &width))
    return env.Undefined();
  const int o = static_cast<int>(op), k = static_cast<int>(kind);
  const size_t n = a.length, w = static_cast<size_t>(width);
  if (o < 0 || o > 3 || static_cast<double>(o) != op || k < 0 || k > 2 || static_cast<double>(k) != kind) {
    throw_range_error(env, std::string(fn) + ": op must be 0-3 (add, sub, mul, div) and kind 0-2 (same, suffix, rows)");
    return env.Undefined();
  }
  const bool fits = out.length == n && (k == 0 ? b.length == n : (w > 0 && n % w == 0 && b.length == (k == 1 ? w : n / w)));
  if (!fits) {
    throw_range_error(env, std::string(fn) + ": out must have a's length, and b a's (same), width (suffix) or a.length / width (rows)");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&a, Way::in}, {&b, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return elementwise_binary_launch(o, k, d.f32(0), d.f32(1), d.f32(2), n, w, s); });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* fn = "elementwiseScale";
  Napi::Env env = info.Env();
  ArrayArg a, out;
  double s = 0;
  if (!expect_array(info, fn, 0, "a", {napi_float32_array}, &a) || !expect_number(info, fn, 1, "s", &s) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out))
    return env.Undefined();
  if (out.length != a.length) {
    throw_range_error(env, std::string(fn) + ": out must have a's length");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&a, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t st) { return elementwise_scale_launch(d.f32(0), s, d.f32(1), a.length, st); });
}

// sumRows and sumSuffix: g, out, width.
template <bool kRows>
Napi::Value Sum(const Napi::CallbackInfo& info) {
  const char* fn = kRows ? "sumRows" : "sumSuffix";
  Napi::Env env = info.Env();
  ArrayArg g, out;
  double width = 0;
  if (!expect_array(info, fn, 0, "g", {napi_float32_array}, &g) || !expect_array(info, fn, 1, "out", {napi_float32_array}, &out) ||
      !expect_number(info, fn, 2, "width", &width))
    return env.Undefined();
  const size_t w = static_cast<size_t>(width);
  if (w == 0 || g.length % w != 0 || out.length != (kRows ? g.length / w : w)) {
    throw_range_error(env, std::string(fn) + (kRows ? ": g must be whole rows of width and out one element a row" : ": g must be a multiple of width and out width long"));
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&g, Way::in}, {&out, Way::out}}, [&](const DevicePointers& d, cudaStream_t s) {
    return kRows ? sum_rows_launch(d.f32(0), d.f32(1), g.length / w, w, s) : sum_suffix_launch(d.f32(0), d.f32(1), g.length, w, s);
  });
}

Napi::Value Narrow(const Napi::CallbackInfo& info) {
  const char* fn = "narrowToFloat32";
  Napi::Env env = info.Env();
  ArrayArg src, out;
  if (!expect_array(info, fn, 0, "src", {napi_float64_array}, &src) || !expect_array(info, fn, 1, "out", {napi_float32_array}, &out)) return env.Undefined();
  if (out.length != src.length) {
    throw_range_error(env, std::string(fn) + ": out must have src's length");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&src, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return narrow_launch(d.f64(0), d.f32(1), src.length, s); });
}

Napi::Value SwapDims(const Napi::CallbackInfo& info) {
  const char* fn = "swapDims";
  Napi::Env env = info.Env();
  ArrayArg src, out;
  double e[5] = {0, 0, 0, 0, 0};
  const char* names[] = {"a", "n0", "b", "n1", "c"};
  if (!expect_array(info, fn, 0, "src", {napi_float32_array}, &src) || !expect_array(info, fn, 1, "out", {napi_float32_array}, &out)) return env.Undefined();
  size_t n = 1;
  for (size_t i = 0; i < 5; ++i) {
    if (!expect_number(info, fn, 2 + i, names[i], &e[i])) return env.Undefined();
    if (e[i] < 0 || static_cast<double>(static_cast<size_t>(e[i])) != e[i]) {
      throw_range_error(env, std::string(fn) + ": " + names[i] + " must be a whole number >= 0, got " + std::to_string(e[i]));
      return env.Undefined();
    }
    n *= static_cast<size_t>(e[i]);
  }
  if (src.length != n || out.length != n) {
    throw_range_error(env, std::string(fn) + ": src and out must hold a * n0 * b * n1 * c = " + std::to_string(n) + " elements");
    return env.Undefined();
  }
  const auto z = [&](size_t i) { return static_cast<size_t>(e[i]); };
  return run_on_device(info, fn, {{&src, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return swap_dims_launch(d.f32(0), d.f32(1), z(0), z(1), z(2), z(3), z(4), s); });
}

Napi::Value RoundBf16(const Napi::CallbackInfo& info) {
  const char* fn = "roundBf16";
  Napi::Env env = info.Env();
  ArrayArg src, out;
  if (!expect_array(info, fn, 0, "src", {napi_float32_array}, &src) || !expect_array(info, fn, 1, "out", {napi_float32_array}, &out)) return env.Undefined();
  if (out.length != src.length) {
    throw_range_error(env, std::string(fn) + ": src and out must have the same length, got " + std::to_string(src.length) + " and " + std::to_string(out.length));
    return env.Undefined();
  }
  // As the CPU's roundBf16: in place or apart, never a shifted overlap.
  if (!expect_disjoint(env, fn, "out", out, "src", src, true)) return env.Undefined();
  // In place: staged once, both and back.
  if (out.data == src.data && out.resident == src.resident)
    return run_on_device(info, fn, {{&out, Way::in_out}}, [&](const DevicePointers& d, cudaStream_t s) { return round_bf16_launch(d.f32(0), d.f32(0), out.length, s); });
  return run_on_device(info, fn, {{&src, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return round_bf16_launch(d.f32(0), d.f32(1), src.length, s); });
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  const char* fn = "sumSquares";
  Napi::Env env = info.Env();
  ArrayArg x, out;
  double at = 0;
  if (!expect_array(info, fn, 0, "x", {napi_float32_array}, &x) || !expect_array(info, fn, 1, "out", {napi_float64_array}, &out) ||
      !expect_number(info, fn, 2, "at", &at))
    return env.Undefined();
  const size_t i = static_cast<size_t>(at);
  if (at < 0 || static_cast<double>(i) != at || i >= out.length) {
    throw_range_error(env, std::string(fn) + ": at must be an index of out (0.." + std::to_string(out.length) + "), got " + std::to_string(at));
    return env.Undefined();
  }
  // The chunks' partial sums: device memory for the call.
  const ArrayArg partials{napi_float64_array, sum_squares_partials(x.length), nullptr, Napi::Value()};
  return run_on_device(info, fn, {{&x, Way::in}, {&out, Way::in_out}, {&partials, Way::scratch}},
                       [&](const DevicePointers& d, cudaStream_t s) { return sum_squares_launch(d.f32(0), x.length, d.f64(2), d.f64(1), i, s); });
}

}  // namespace

void RegisterCudaElementwiseExports(Napi::Env env, Napi::Object exports) {
  exports.Set("elementwiseBinary", Napi::Function::New(env, Binary, "elementwiseBinary"));
  exports.Set("elementwiseScale", Napi::Function::New(env, Scale, "elementwiseScale"));
  exports.Set("sumRows", Napi::Function::New(env, Sum<true>, "sumRows"));
  exports.Set("sumSuffix", Napi::Function::New(env, Sum<false>, "sumSuffix"));
  exports.Set("narrowToFloat32", Napi::Function::New(env, Narrow, "narrowToFloat32"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("swapDims", Napi::Function::New(env, SwapDims, "swapDims"));
  exports.Set("roundBf16", Napi::Function::New(env, RoundBf16, "roundBf16"));
}

}  // namespace pleat
