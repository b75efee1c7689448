// The Node-API binding of the grouped expert GEMM (kernels/grouped_matmul.h). Typed wrappers:
// src/native/CpuOptional.ts. Every argument is checked (TypeError for a wrong type or
// overlapping output, RangeError for a wrong length or a negative group) before anything is
// written.
//
//   groupedRows(a, b, out, rows, k, n, transB)
//       a [N, k], b [G, k, n] ([G, n, k] when transB), out [N, n]; rows Int32Array [G], sum N:
//       out[group g] = a[group g] x op(b[g])
//   groupedWeights(a, c, out, rows, m, n, accumulate)
//       a [N, m], c [N, n], out [G, m, n]: out[g] = a[group g]^T x c[group g] (+= when
//       accumulate); an empty group's out[g] is zeros (unchanged when accumulating)
#include "grouped_matmul_binding.h"

#include <string>

#include "kernels/cpu_features.h"
#include "kernels/grouped_matmul.h"
#include "napi_args.h"
#include "tensor_args.h"

namespace pleat {
namespace {

// rows: non-negative, their sum into *total.
bool parse_rows(const Napi::CallbackInfo& info, const char* fn, ArrayArg* rows, size_t* total) {
  if (!expect_array(info, fn, 3, "rows", {kI32}, rows)) return false;
  *total = 0;
  for (size_t g = 0; g < rows->length; ++g) {
    const int32_t r = rows->i32()[g];
    if (r < 0) {
      return throw_range_error(info.Env(), std::string(fn) + ": rows[" + std::to_string(g) + "] is " + std::to_string(r) +
                                               ", must be 0 or more");
    }
    *total += static_cast<size_t>(r);
  }
  return true;
}

// Lengths: a = N * aCols, b = bLength, out = outLength; out disjoint from both.
bool check_lengths(Napi::Env env, const char* fn, const ArrayArg& a, const ArrayArg& b, const ArrayArg& out, size_t n_rows,
                   size_t a_cols, const char* a_formula, size_t b_length, const char* b_formula, size_t out_length,
                   const char* out_formula) {
  size_t a_length = 0;
  return checked_mul(env, fn, a_formula, n_rows, a_cols, &a_length) && expect_length(env, fn, "a", a, a_length, a_formula) &&
         expect_length(env, fn, "b", b, b_length, b_formula) && expect_length(env, fn, "out", out, out_length, out_formula) &&
         expect_disjoint(env, fn, "out", out, "a", a, false) && expect_disjoint(env, fn, "out", out, "b", b, false);
}

Napi::Value GroupedRows(const Napi::CallbackInfo& info) {
  const char* fn = "groupedRows";
  Napi::Env env = info.Env();
  ArrayArg a, b, out, rows;
  GroupedArgs g{};
  size_t total = 0, kn = 0, b_length = 0, out_length = 0;
  if (!expect_arity(info, fn, 7) || !expect_array(info, fn, 0, "a", {kF32}, &a) || !expect_array(info, fn, 1, "b", {kF32}, &b) ||
      !expect_array(info, fn, 2, "out", {kF32}, &out) || !parse_rows(info, fn, &rows, &total) ||
      !expect_size(info, fn, 4, "k", &g.k) || !expect_size(info, fn, 5, "n", &g.n) || !expect_bool(info, fn, 6, "transB", &g.trans_b) ||
      !checked_mul(env, fn, "k * n", g.k, g.n, &kn) || !checked_mul(env, fn, "G * k * n", rows.length, kn, &b_length) ||
      !checked_mul(env, fn, "N * n", total, g.n, &out_length) ||
      !check_lengths(env, fn, a, b, out, total, g.k, "N * k", b_length, "G * k * n", out_length, "N * n")) {
    return env.Undefined();
  }
  g.a = a.f32();
  g.b = b.f32();
  g.out = out.f32_mut();
  g.rows = rows.i32();
  g.groups = rows.length;
  const Isa isa = active_isa();
  return run_sync(env, fn, Call{[g, isa]() -> std::string { return grouped_rows(isa, g) ? "" : "out of memory for packing buffers"; }, {}});
}

Napi::Value GroupedWeights(const Napi::CallbackInfo& info) {
  const char* fn = "groupedWeights";
  Napi::Env env = info.Env();
  ArrayArg a, c, out, rows;
  GroupedArgs g{};
  size_t total = 0, mn = 0, c_length = 0, out_length = 0;
  if (!expect_arity(info, fn, 7) || !expect_array(info, fn, 0, "a", {kF32}, &a) || !expect_array(info, fn, 1, "c", {kF32}, &c) ||
      !expect_array(info, fn, 2, "out", {kF32}, &out) || !parse_rows(info, fn, &rows, &total) ||
      !expect_size(info, fn, 4, "m", &g.m) || !expect_size(info, fn, 5, "n", &g.n) ||
      !expect_bool(info, fn, 6, "accumulate", &g.accumulate) || !checked_mul(env, fn, "m * n", g.m, g.n, &mn) ||
      !checked_mul(env, fn, "N * n", total, g.n, &c_length) || !checked_mul(env, fn, "G * m * n", rows.length, mn, &out_length) ||
      !check_lengths(env, fn, a, c, out, total, g.m, "N * m", c_length, "N * n", out_length, "G * m * n")) {
    return env.Undefined();
  }
  g.a = a.f32();
  g.b = c.f32();
  g.out = out.f32_mut();
  g.rows = rows.i32();
  g.groups = rows.length;
  const Isa isa = active_isa();
  return run_sync(env, fn, Call{[g, isa]() -> std::string { return grouped_weights(isa, g) ? "" : "out of memory for packing buffers"; }, {}});
}

}  // namespace

void RegisterGroupedMatmulExports(Napi::Env env, Napi::Object exports) {
  exports.Set("groupedRows", Napi::Function::New(env, GroupedRows, "groupedRows"));
  exports.Set("groupedWeights", Napi::Function::New(env, GroupedWeights, "groupedWeights"));
}

}  // namespace pleat
