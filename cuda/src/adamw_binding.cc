// The Node-API binding of the optimizer's kernels (kernels/adamw.h, kernels/sum_squares.h). Typed
// wrappers: src/native/Cpu.ts.
//
//   adamw(w, g, m, v, beta1, beta2, c1, c2, eps, lr, clip, decay) -> undefined
//       updates w, m and v in place over their common length: w and g both Float32Array or both
//       Float64Array, m and v Float32Array; c1 = 1 - beta1^t, c2 = 1 - beta2^t.
//   sumSquares(x) -> the sum of x[i]^2 in float64, in sum_squares.h's fixed order (x a
//       Float32Array or Float64Array; the gradient norm and the non-finite check).
//   sumSquaresEach(xs) -> a Float64Array of sumSquares(xs[i]) for an array xs of them, the
//       arrays spread over the kernels' pool (each sum the same bits as its own call).
#include "adamw_binding.h"

#include <string>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/sum_squares.h"
#include "napi_args.h"

namespace pleat {
namespace {

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "adamw";
  Napi::TypedArray w, g, m, v;
  if (!expect_arity(info, fn, 12) || !expect_typed_array(info, fn, 0, "w", &w) || !expect_typed_array(info, fn, 1, "g", &g) ||
      !expect_typed_array(info, fn, 2, "m", &m) || !expect_typed_array(info, fn, 3, "v", &v)) {
    return env.Undefined();
  }
  double x[8];
  const char* names[8] = {"beta1", "beta2", "c1", "c2", "eps", "lr", "clip", "decay"};
  for (size_t i = 0; i < 8; ++i) {
    if (!expect_number(info, fn, 4 + i, names[i], &x[i])) return env.Undefined();
  }
  const napi_typedarray_type wt = w.TypedArrayType();
  if ((wt != napi_float32_array && wt != napi_float64_array) || g.TypedArrayType() != wt) {
    throw_type_error(env, std::string("adamw: w and g must both be Float32Array or both Float64Array, got ") + typed_array_name(wt) +
                              " and " + typed_array_name(g.TypedArrayType()));
    return env.Undefined();
  }
  if (m.TypedArrayType() != napi_float32_array || v.TypedArrayType() != napi_float32_array) {
    throw_type_error(env, "adamw: m and v must be Float32Array");
    return env.Undefined();
  }
  const size_t n = w.ElementLength();
  if (g.ElementLength() != n || m.ElementLength() != n || v.ElementLength() != n) {
    throw_range_error(env, "adamw: w, g, m and v must have the same length, got " + std::to_string(n) + ", " +
                               std::to_string(g.ElementLength()) + ", " + std::to_string(m.ElementLength()) + ", " +
                               std::to_string(v.ElementLength()));
    return env.Undefined();
  }
  if (n == 0) return env.Undefined();
  uint8_t* wb = view_bytes(w);
  uint8_t* gb = view_bytes(g);
  uint8_t* mb = view_bytes(m);
  uint8_t* vb = view_bytes(v);
  if (wb == nullptr || gb == nullptr || mb == nullptr || vb == nullptr) {
    Napi::Error::New(env, "adamw: cannot access the memory of an argument").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const AdamwScalars s{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]};
  float* mf = reinterpret_cast<float*>(mb);
  float* vf = reinterpret_cast<float*>(vb);
  if (wt == napi_float32_array) {
    adamw_f32(s, n, reinterpret_cast<float*>(wb), reinterpret_cast<const float*>(gb), mf, vf);
  } else {
    adamw_f64(s, n, reinterpret_cast<double*>(wb), reinterpret_cast<const double*>(gb), mf, vf);
  }
  return env.Undefined();
}

// A Float32Array or Float64Array as one run of sum_squares_each; false (an Error naming `what`
// thrown) when its memory cannot be read.
bool squares_run(Napi::Env env, const char* fn, const std::string& what, const Napi::TypedArray& x, SquaresRun* out) {
  const size_t n = x.ElementLength();
  const uint8_t* bytes = n == 0 ? nullptr : view_bytes(x);
  if (n != 0 && bytes == nullptr) {
    Napi::Error::New(env, std::string(fn) + ": cannot access the memory of " + what).ThrowAsJavaScriptException();
    return false;
  }
  *out = SquaresRun{bytes, n, x.TypedArrayType() == napi_float64_array};
  return true;
}

bool is_float_array(napi_typedarray_type type) { return type == napi_float32_array || type == napi_float64_array; }

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::TypedArray x;
  if (!expect_arity(info, "sumSquares", 1) || !expect_typed_array(info, "sumSquares", 0, "x", &x)) return env.Undefined();
  if (!is_float_array(x.TypedArrayType())) {
    throw_type_error(env, std::string("sumSquares: x must be a Float32Array or Float64Array, got ") + typed_array_name(x.TypedArrayType()));
    return env.Undefined();
  }
  SquaresRun run;
  if (!squares_run(env, "sumSquares", "x", x, &run)) return env.Undefined();
  double sum = 0;
  sum_squares_each(&run, 1, &sum);
  return Napi::Number::New(env, sum);
}

Napi::Value SumSquaresEach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!expect_arity(info, "sumSquaresEach", 1)) return env.Undefined();
  if (!info[0].IsArray()) {
    throw_type_error(env, "sumSquaresEach: xs must be an array of Float32Array or Float64Array");
    return env.Undefined();
  }
  const Napi::Array xs = info[0].As<Napi::Array>();
  const uint32_t count = xs.Length();
  std::vector<SquaresRun> runs(count);
  for (uint32_t i = 0; i < count; ++i) {
    const Napi::Value item = xs.Get(i);
    const std::string what = "xs[" + std::to_string(i) + "]";
    if (!item.IsTypedArray() || !is_float_array(item.As<Napi::TypedArray>().TypedArrayType())) {
      throw_type_error(env, "sumSquaresEach: " + what + " must be a Float32Array or Float64Array");
      return env.Undefined();
    }
    if (!squares_run(env, "sumSquaresEach", what, item.As<Napi::TypedArray>(), &runs[i])) return env.Undefined();
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, count);
  sum_squares_each(runs.data(), count, out.Data());
  return out;
}

}  // namespace

void RegisterAdamwExports(Napi::Env env, Napi::Object exports) {
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("sumSquaresEach", Napi::Function::New(env, SumSquaresEach, "sumSquaresEach"));
}

}  // namespace pleat
