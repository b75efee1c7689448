// The Node-API binding of the cross-entropy kernels (kernels/cross_entropy.h). Typed wrappers:
// src/native/CpuCrossEntropy.ts.
//
//   crossEntropyRowMax(x, rows, cols, max)
//   crossEntropyRowSumExp(x, rows, cols, max, sum)
//   crossEntropyGrad(x, rows, cols, logSum, targets, ignore, start, scale, d)
//
// x and d are Float32Array of rows * cols, max / sum / logSum Float64Array of rows, targets an
// Int32Array of rows. Wrong types are TypeErrors, wrong lengths RangeErrors, thrown before
// anything is written.
#include "cross_entropy_binding.h"

#include <string>

#include "kernels/cross_entropy.h"
#include "napi_args.h"
#include "tensor_args.h"

namespace pleat {
namespace {

// x (index 0), rows (1), cols (2): the logits and their shape, checked.
bool expect_logits(const Napi::CallbackInfo& info, const char* fn, ArrayArg* x, size_t* rows, size_t* cols) {
  size_t n = 0;
  return expect_array(info, fn, 0, "x", {kF32}, x) && expect_size(info, fn, 1, "rows", rows) && expect_size(info, fn, 2, "cols", cols) &&
         checked_mul(info.Env(), fn, "rows * cols", *rows, *cols, &n) && expect_length(info.Env(), fn, "x", *x, n, "rows * cols");
}

// A Float64Array of `rows` at `index`.
bool expect_per_row(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, size_t rows, ArrayArg* out) {
  return expect_array(info, fn, index, name, {kF64}, out) && expect_length(info.Env(), fn, name, *out, rows, "rows");
}

Napi::Value RowMax(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropyRowMax";
  ArrayArg x, max;
  size_t rows = 0, cols = 0;
  if (!expect_arity(info, fn, 4) || !expect_logits(info, fn, &x, &rows, &cols) || !expect_per_row(info, fn, 3, "max", rows, &max)) {
    return info.Env().Undefined();
  }
  if (rows > 0) ce_row_max(x.f32(), rows, cols, max.f64_mut());
  return info.Env().Undefined();
}

Napi::Value RowSumExp(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropyRowSumExp";
  ArrayArg x, max, sum;
  size_t rows = 0, cols = 0;
  if (!expect_arity(info, fn, 5) || !expect_logits(info, fn, &x, &rows, &cols) || !expect_per_row(info, fn, 3, "max", rows, &max) ||
      !expect_per_row(info, fn, 4, "sum", rows, &sum) || !expect_disjoint(info.Env(), fn, "sum", sum, "max", max, false)) {
    return info.Env().Undefined();
  }
  if (rows > 0) ce_row_sum_exp(x.f32(), rows, cols, reinterpret_cast<const double*>(max.data), sum.f64_mut());
  return info.Env().Undefined();
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "crossEntropyGrad";
  ArrayArg x, log_sum, targets, d;
  size_t rows = 0, cols = 0;
  double ignore = 0, start = 0, scale = 0;
  if (!expect_arity(info, fn, 9) || !expect_logits(info, fn, &x, &rows, &cols) || !expect_per_row(info, fn, 3, "logSum", rows, &log_sum) ||
      !expect_array(info, fn, 4, "targets", {kI32}, &targets) || !expect_length(env, fn, "targets", targets, rows, "rows") ||
      !expect_number(info, fn, 5, "ignore", &ignore) || !expect_number(info, fn, 6, "start", &start) || !expect_number(info, fn, 7, "scale", &scale) ||
      !expect_array(info, fn, 8, "d", {kF32}, &d) || !expect_length(env, fn, "d", d, x.length, "rows * cols") ||
      !expect_disjoint(env, fn, "d", d, "x", x, false)) {
    return env.Undefined();
  }
  if (ignore != static_cast<double>(static_cast<int32_t>(ignore)) || start != static_cast<double>(static_cast<int64_t>(start))) {
    throw_range_error(env, std::string(fn) + ": ignore and start must be integers");
    return env.Undefined();
  }
  if (rows > 0) {
    ce_grad(x.f32(), rows, cols, reinterpret_cast<const double*>(log_sum.data), targets.i32(), static_cast<int32_t>(ignore), static_cast<int64_t>(start),
            scale, d.f32_mut());
  }
  return env.Undefined();
}

}  // namespace

void RegisterCrossEntropyExports(Napi::Env env, Napi::Object exports) {
  exports.Set("crossEntropyRowMax", Napi::Function::New(env, RowMax, "crossEntropyRowMax"));
  exports.Set("crossEntropyRowSumExp", Napi::Function::New(env, RowSumExp, "crossEntropyRowSumExp"));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, Grad, "crossEntropyGrad"));
}

}  // namespace pleat
