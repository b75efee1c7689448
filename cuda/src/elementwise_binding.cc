// The Node-API binding of the element-wise kernels (kernels/elementwise.h). Typed wrappers:
// src/native/CpuElementwise.ts.
//
//   elementwiseBinary(op, kind, a, b, out, width)  op 0 add, 1 sub, 2 mul, 3 div; kind 0 same
//       (b as long as a), 1 suffix (b of `width` elements repeats), 2 rows (one b per row of
//       `width`); out as long as a
//   elementwiseScale(a, s, out)                    out = a * s (s a double)
//   sumRows(g, out, width)                         out[r] = the sum of row r of g
//   sumSuffix(g, out, width)                       out[j] = the sum of g[i] over i % width == j
//   ropeRotate(x, cos, sin, out, b, s, heads, d, tableRows, sign)
//                                                  RoPE's rotation (kernels/rope.h); cos and sin
//       Float64Array [tableRows, d / 2], tableRows S or B * S, sign 1 or -1; out as long as x
//
// All arrays of one call are Float32Array or all Float64Array. Inputs may be the output itself
// (the same view: each element is read before it is written); a shifted overlap is a TypeError.
// Wrong types are TypeErrors, inconsistent lengths RangeErrors, thrown before anything is
// written.
#include "elementwise_binding.h"

#include <string>

#include "kernels/cpu_features.h"
#include "kernels/elementwise.h"
#include "kernels/rope.h"
#include "napi_args.h"

namespace pleat {
namespace {

constexpr std::initializer_list<napi_typedarray_type> kFloats = {napi_float32_array, napi_float64_array};

bool same_type(Napi::Env env, const char* fn, const ArrayArg& first, std::initializer_list<std::pair<const char*, const ArrayArg*>> rest) {
  for (const auto& [name, arg] : rest) {
    if (arg->type != first.type) {
      return throw_type_error(env, std::string(fn) + ": " + name + " must be a " + typed_array_name(first.type) + " like the first array, got " +
                                       typed_array_name(arg->type));
    }
  }
  return true;
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "elementwiseBinary";
  size_t op = 0, kind = 0, width = 0;
  ArrayArg a, b, out;
  if (!expect_arity(info, fn, 6) || !expect_size(info, fn, 0, "op", &op, 3) || !expect_size(info, fn, 1, "kind", &kind, 2) ||
      !expect_array(info, fn, 2, "a", kFloats, &a) || !expect_array(info, fn, 3, "b", kFloats, &b) ||
      !expect_array(info, fn, 4, "out", kFloats, &out) || !expect_size(info, fn, 5, "width", &width) ||
      !same_type(env, fn, a, {{"b", &b}, {"out", &out}}) || !expect_length(env, fn, "out", out, a.length, "a.length")) {
    return env.Undefined();
  }
  const size_t n = a.length;
  const Broadcast shape = static_cast<Broadcast>(kind);
  if (shape == Broadcast::Same) {
    if (!expect_length(env, fn, "b", b, n, "a.length")) return env.Undefined();
  } else {
    if (width == 0 ? n != 0 : n % width != 0) {
      throw_range_error(env, std::string(fn) + ": a has " + std::to_string(n) + " elements, not a whole number of width " + std::to_string(width));
      return env.Undefined();
    }
    const size_t want = width == 0 ? 0 : (shape == Broadcast::Suffix ? width : n / width);
    if (!expect_length(env, fn, "b", b, want, shape == Broadcast::Suffix ? "width" : "a.length / width")) return env.Undefined();
  }
  if (!expect_disjoint(env, fn, "out", out, "a", a, true) || !expect_disjoint(env, fn, "out", out, "b", b, shape == Broadcast::Same)) {
    return env.Undefined();
  }
  if (n == 0) return env.Undefined();
  const Isa isa = active_isa();
  const BinaryOp o = static_cast<BinaryOp>(op);
  if (a.type == napi_float32_array) {
    binary_f32(isa, o, shape, reinterpret_cast<const float*>(a.data), reinterpret_cast<const float*>(b.data), reinterpret_cast<float*>(out.data), n, width);
  } else {
    binary_f64(isa, o, shape, reinterpret_cast<const double*>(a.data), reinterpret_cast<const double*>(b.data), reinterpret_cast<double*>(out.data), n, width);
  }
  return env.Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "elementwiseScale";
  ArrayArg a, out;
  double s = 0;
  if (!expect_arity(info, fn, 3) || !expect_array(info, fn, 0, "a", kFloats, &a) || !expect_number(info, fn, 1, "s", &s) ||
      !expect_array(info, fn, 2, "out", kFloats, &out) || !same_type(env, fn, a, {{"out", &out}}) ||
      !expect_length(env, fn, "out", out, a.length, "a.length") || !expect_disjoint(env, fn, "out", out, "a", a, true)) {
    return env.Undefined();
  }
  if (a.length == 0) return env.Undefined();
  if (a.type == napi_float32_array) {
    scale_f32(active_isa(), reinterpret_cast<const float*>(a.data), s, reinterpret_cast<float*>(out.data), a.length);
  } else {
    scale_f64(active_isa(), reinterpret_cast<const double*>(a.data), s, reinterpret_cast<double*>(out.data), a.length);
  }
  return env.Undefined();
}

// sumRows / sumSuffix: g has out.length rows of width (rows) or a multiple of width = out.length.
Napi::Value Sum(const Napi::CallbackInfo& info, const char* fn, bool rows) {
  Napi::Env env = info.Env();
  ArrayArg g, out;
  size_t width = 0, want = 0;
  if (!expect_arity(info, fn, 3) || !expect_array(info, fn, 0, "g", kFloats, &g) || !expect_array(info, fn, 1, "out", kFloats, &out) ||
      !expect_size(info, fn, 2, "width", &width) || !same_type(env, fn, g, {{"out", &out}}) ||
      !expect_disjoint(env, fn, "out", out, "g", g, false)) {
    return env.Undefined();
  }
  if (rows) {
    if (!checked_mul(env, fn, "out.length * width", out.length, width, &want) || !expect_length(env, fn, "g", g, want, "out.length * width")) {
      return env.Undefined();
    }
  } else if (!expect_length(env, fn, "out", out, width, "width") ||
             (width == 0 ? g.length != 0 : g.length % width != 0)) {
    if (!env.IsExceptionPending()) {
      throw_range_error(env, std::string(fn) + ": g has " + std::to_string(g.length) + " elements, not a whole number of width " + std::to_string(width));
    }
    return env.Undefined();
  }
  if (out.length == 0) return env.Undefined();
  const bool f32 = g.type == napi_float32_array;
  if (rows && f32) sum_rows_f32(reinterpret_cast<const float*>(g.data), reinterpret_cast<float*>(out.data), out.length, width);
  if (rows && !f32) sum_rows_f64(reinterpret_cast<const double*>(g.data), reinterpret_cast<double*>(out.data), out.length, width);
  if (!rows && f32) sum_suffix_f32(active_isa(), reinterpret_cast<const float*>(g.data), reinterpret_cast<float*>(out.data), g.length, width);
  if (!rows && !f32) sum_suffix_f64(active_isa(), reinterpret_cast<const double*>(g.data), reinterpret_cast<double*>(out.data), g.length, width);
  return env.Undefined();
}

Napi::Value SumRows(const Napi::CallbackInfo& info) { return Sum(info, "sumRows", true); }
Napi::Value SumSuffix(const Napi::CallbackInfo& info) { return Sum(info, "sumSuffix", false); }

Napi::Value RopeRotate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "ropeRotate";
  ArrayArg x, cos, sin, out;
  size_t b = 0, s = 0, heads = 0, d = 0, rows = 0, want = 0, tokens = 0, table = 0;
  double sign = 0;
  if (!expect_arity(info, fn, 10) || !expect_array(info, fn, 0, "x", kFloats, &x) || !expect_array(info, fn, 1, "cos", {napi_float64_array}, &cos) ||
      !expect_array(info, fn, 2, "sin", {napi_float64_array}, &sin) || !expect_array(info, fn, 3, "out", kFloats, &out) ||
      !expect_size(info, fn, 4, "b", &b) || !expect_size(info, fn, 5, "s", &s) || !expect_size(info, fn, 6, "heads", &heads) ||
      !expect_size(info, fn, 7, "d", &d) || !expect_size(info, fn, 8, "tableRows", &rows) || !expect_number(info, fn, 9, "sign", &sign) ||
      !same_type(env, fn, x, {{"out", &out}})) {
    return env.Undefined();
  }
  if (d % 2 != 0) {
    throw_range_error(env, std::string(fn) + ": d must be even, got " + std::to_string(d));
    return env.Undefined();
  }
  if (sign != 1.0 && sign != -1.0) {
    throw_range_error(env, std::string(fn) + ": sign must be 1 or -1");
    return env.Undefined();
  }
  if (!checked_mul(env, fn, "b * s", b, s, &tokens) || (rows != s && rows != tokens)) {
    if (!env.IsExceptionPending()) throw_range_error(env, std::string(fn) + ": tableRows must be s or b * s, got " + std::to_string(rows));
    return env.Undefined();
  }
  if (!checked_mul(env, fn, "b * s * heads", tokens, heads, &want) || !checked_mul(env, fn, "b * s * heads * d", want, d, &want) ||
      !expect_length(env, fn, "x", x, want, "b * s * heads * d") || !expect_length(env, fn, "out", out, want, "x.length") ||
      !checked_mul(env, fn, "tableRows * d / 2", rows, d / 2, &table) || !expect_length(env, fn, "cos", cos, table, "tableRows * d / 2") ||
      !expect_length(env, fn, "sin", sin, table, "tableRows * d / 2") || !expect_disjoint(env, fn, "out", out, "x", x, false)) {
    return env.Undefined();
  }
  if (want == 0) return env.Undefined();
  const double* c = reinterpret_cast<const double*>(cos.data);
  const double* sn = reinterpret_cast<const double*>(sin.data);
  if (x.type == napi_float32_array) {
    rope_f32(reinterpret_cast<const float*>(x.data), c, sn, reinterpret_cast<float*>(out.data), b, s, heads, d, rows, sign);
  } else {
    rope_f64(reinterpret_cast<const double*>(x.data), c, sn, reinterpret_cast<double*>(out.data), b, s, heads, d, rows, sign);
  }
  return env.Undefined();
}

}  // namespace

void RegisterElementwiseExports(Napi::Env env, Napi::Object exports) {
  exports.Set("elementwiseBinary", Napi::Function::New(env, Binary, "elementwiseBinary"));
  exports.Set("elementwiseScale", Napi::Function::New(env, Scale, "elementwiseScale"));
  exports.Set("sumRows", Napi::Function::New(env, SumRows, "sumRows"));
  exports.Set("sumSuffix", Napi::Function::New(env, SumSuffix, "sumSuffix"));
  exports.Set("ropeRotate", Napi::Function::New(env, RopeRotate, "ropeRotate"));
}

}  // namespace pleat
