// The Node-API binding of the MoE dispatch kernels (kernels/dispatch.h). Typed wrappers:
// src/native/CpuDispatch.ts. Every argument is checked (TypeError for a wrong type, RangeError for
// a wrong length or an index out of range) before anything is written.
//
//   routingCounts(mask, tokens, experts, counts) -> N
//       mask Uint8Array [T * E]; counts Int32Array [E] gets the rows of each expert
//   routingOrder(mask, tokens, experts, sortedTokens, sortedExperts)
//       both Int32Array [N]: the rows expert-major, token-ascending
//   permuteRows(src, cols, index, out, outCols, probs, experts, numExperts, probsOut)
//       out [N, outCols] (outCols = cols, or cols + 1 for the prob column) gets src row
//       index[j]; with probs [T * E] (else null) the prob of row j, probs[index[j] * E +
//       experts[j]], goes to the column and / or probsOut [N] (else null)
//   combineRows(rows, rowCols, index, weights, extra, tokens, cols, out)
//       out [T, cols] (cols + 1 with extra [N], else null) = 0 + the sum in increasing j of
//       weights[j] * rows[j, 0:cols] (weights [N] or null); rows [N, rowCols], rowCols >= cols
//   combineRowsFrom, gatherRowsFrom: rows that lie in several buffers (dispatch_sources_binding.cc)
//   combineBackward(g, index, cols, weights, rows, gradRows, gradWeights)
//       g [T, cols], rows [N, cols]; gradRows [N, cols] and gradWeights [N] (either null)
//   scatterPairs(values, stride, index, experts, numExperts, out)
//       out [T * E] += values[j * stride] at index[j] * E + experts[j], in increasing j (values
//       needs (N - 1) * stride + 1 elements: a column of a [N, stride] view)
#include "dispatch_binding.h"

#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/rows.h"
#include "dispatch_args.h"
#include "napi_args.h"
#include "tensor_args.h"

namespace pleat {
namespace {

constexpr auto kU8 = napi_uint8_array;

bool expect_mask(const Napi::CallbackInfo& info, const char* fn, ArrayArg* mask, size_t* tokens, size_t* experts) {
  size_t cells = 0;
  return expect_array(info, fn, 0, "mask", {kU8}, mask) && expect_size(info, fn, 1, "tokens", tokens, 2147483647.0) &&
         expect_size(info, fn, 2, "experts", experts, 2147483647.0) &&
         checked_mul(info.Env(), fn, "tokens * experts", *tokens, *experts, &cells) &&
         expect_length(info.Env(), fn, "mask", *mask, cells, "tokens * experts");
}

Napi::Value RoutingCounts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "routingCounts";
  ArrayArg mask, counts;
  size_t tokens = 0, experts = 0;
  if (!expect_arity(info, fn, 4) || !expect_mask(info, fn, &mask, &tokens, &experts) ||
      !expect_array(info, fn, 3, "counts", {kI32}, &counts) || !expect_length(env, fn, "counts", counts, experts, "experts")) {
    return env.Undefined();
  }
  const size_t n = routing_counts(mask.data, tokens, experts, reinterpret_cast<int32_t*>(counts.data));
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value RoutingOrder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "routingOrder";
  ArrayArg mask, sorted_tokens, sorted_experts;
  size_t tokens = 0, experts = 0;
  if (!expect_arity(info, fn, 5) || !expect_mask(info, fn, &mask, &tokens, &experts) ||
      !expect_array(info, fn, 3, "sortedTokens", {kI32}, &sorted_tokens) ||
      !expect_array(info, fn, 4, "sortedExperts", {kI32}, &sorted_experts) ||
      !expect_disjoint(env, fn, "sortedTokens", sorted_tokens, "sortedExperts", sorted_experts, false)) {
    return env.Undefined();
  }
  std::vector<int32_t> counts(experts);
  const size_t n = routing_counts(mask.data, tokens, experts, counts.data());
  if (!expect_length(env, fn, "sortedTokens", sorted_tokens, n, "the routed entries of mask") ||
      !expect_length(env, fn, "sortedExperts", sorted_experts, n, "the routed entries of mask")) {
    return env.Undefined();
  }
  routing_order(mask.data, tokens, experts, reinterpret_cast<int32_t*>(sorted_tokens.data),
                reinterpret_cast<int32_t*>(sorted_experts.data));
  return env.Undefined();
}

Napi::Value PermuteRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "permuteRows";
  ArrayArg src, index, out, probs, experts, probs_out;
  size_t cols = 0, out_cols = 0, num_experts = 0, n_out = 0;
  bool has_probs = false, has_experts = false, has_probs_out = false;
  if (!expect_arity(info, fn, 9) || !expect_array(info, fn, 0, "src", {kF32}, &src) ||
      !expect_size(info, fn, 1, "cols", &cols) || !expect_array(info, fn, 2, "index", {kI32}, &index) ||
      !expect_array(info, fn, 3, "out", {kF32}, &out) || !expect_size(info, fn, 4, "outCols", &out_cols) ||
      !optional_array(info, fn, 5, "probs", {kF32}, &probs, &has_probs) ||
      !optional_array(info, fn, 6, "experts", {kI32}, &experts, &has_experts) ||
      !expect_size(info, fn, 7, "numExperts", &num_experts, 2147483647.0) ||
      !optional_array(info, fn, 8, "probsOut", {kF32}, &probs_out, &has_probs_out)) {
    return env.Undefined();
  }
  const size_t n = index.length;
  if (out_cols != cols && out_cols != cols + 1) {
    throw_range_error(env, std::string(fn) + ": outCols must be cols or cols + 1, got " + std::to_string(out_cols));
    return env.Undefined();
  }
  const bool wants_probs = out_cols == cols + 1 || has_probs_out;
  if (wants_probs != has_probs || (has_probs && !has_experts)) {
    throw_type_error(env, std::string(fn) + ": probs and experts are given exactly when a prob column or probsOut is asked for");
    return env.Undefined();
  }
  if (!checked_mul(env, fn, "index.length * outCols", n, out_cols, &n_out) ||
      !expect_length(env, fn, "out", out, n_out, "index.length * outCols")) {
    return env.Undefined();
  }
  if (cols == 0 ? src.length != 0 : src.length % cols != 0) {
    throw_range_error(env, std::string(fn) + ": src has " + std::to_string(src.length) + " elements, not a whole number of rows of " +
                               std::to_string(cols));
    return env.Undefined();
  }
  if (!expect_disjoint(env, fn, "out", out, "src", src, false)) return env.Undefined();
  size_t tokens = cols == 0 ? 0 : src.length / cols;
  if (has_probs) {
    if (num_experts == 0 || probs.length % num_experts != 0 || (cols != 0 && probs.length / num_experts != tokens)) {
      throw_range_error(env, std::string(fn) + ": probs has " + std::to_string(probs.length) + " elements, not [tokens, numExperts] with " +
                                 std::to_string(tokens) + " tokens and " + std::to_string(num_experts) + " experts");
      return env.Undefined();
    }
    tokens = probs.length / num_experts;
    if (!expect_length(env, fn, "experts", experts, n, "index.length") ||
        !expect_indices(env, fn, "experts", experts, num_experts, "numExperts") ||
        !expect_disjoint(env, fn, "out", out, "probs", probs, false)) {
      return env.Undefined();
    }
    if (has_probs_out && (!expect_length(env, fn, "probsOut", probs_out, n, "index.length") ||
                          !expect_disjoint(env, fn, "probsOut", probs_out, "probs", probs, false) ||
                          !expect_disjoint(env, fn, "probsOut", probs_out, "out", out, false) ||
                          !expect_disjoint(env, fn, "probsOut", probs_out, "src", src, false))) {
      return env.Undefined();
    }
  }
  // Without columns or probs nothing is read, so any index is harmless.
  if ((cols != 0 || has_probs) && !expect_indices(env, fn, "index", index, tokens, "tokens")) return env.Undefined();
  GatherExtraArgs a;
  a.src = src.f32();
  a.src_stride = cols;
  a.index = index.i32();
  a.n = n;
  a.cols = cols;
  a.out = out.f32_mut();
  a.out_stride = out_cols;
  if (has_probs) {
    a.extra = probs.f32();
    a.extra_stride = num_experts;
    a.extra_expert = experts.i32();
    a.extra_out = has_probs_out ? probs_out.f32_mut() : nullptr;
  }
  gather_rows_extra(active_isa(), a);
  return env.Undefined();
}

Napi::Value CombineRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "combineRows";
  ArrayArg rows, index, weights, extra, out;
  size_t row_cols = 0, tokens = 0, cols = 0, need = 0, n_out = 0;
  bool has_weights = false, has_extra = false;
  if (!expect_arity(info, fn, 8) || !expect_array(info, fn, 0, "rows", {kF32}, &rows) ||
      !expect_size(info, fn, 1, "rowCols", &row_cols) || !expect_array(info, fn, 2, "index", {kI32}, &index) ||
      !optional_array(info, fn, 3, "weights", {kF32}, &weights, &has_weights) ||
      !optional_array(info, fn, 4, "extra", {kF32}, &extra, &has_extra) ||
      !expect_size(info, fn, 5, "tokens", &tokens, 2147483647.0) || !expect_size(info, fn, 6, "cols", &cols) ||
      !expect_array(info, fn, 7, "out", {kF32}, &out)) {
    return env.Undefined();
  }
  const size_t n = index.length;
  const size_t out_cols = has_extra ? cols + 1 : cols;
  if (cols > row_cols) {
    throw_range_error(env, std::string(fn) + ": cols " + std::to_string(cols) + " is more than rowCols " + std::to_string(row_cols));
    return env.Undefined();
  }
  if (!checked_mul(env, fn, "index.length * rowCols", n, row_cols, &need) || !expect_length(env, fn, "rows", rows, need, "index.length * rowCols") ||
      !checked_mul(env, fn, "tokens * out columns", tokens, out_cols, &n_out) ||
      !expect_length(env, fn, "out", out, n_out, has_extra ? "tokens * (cols + 1)" : "tokens * cols") ||
      !expect_disjoint(env, fn, "out", out, "rows", rows, false) ||
      (has_weights && (!expect_length(env, fn, "weights", weights, n, "index.length") ||
                       !expect_disjoint(env, fn, "out", out, "weights", weights, false))) ||
      (has_extra && (!expect_length(env, fn, "extra", extra, n, "index.length") ||
                     !expect_disjoint(env, fn, "out", out, "extra", extra, false))) ||
      !expect_indices(env, fn, "index", index, tokens, "tokens")) {
    return env.Undefined();
  }
  CombineArgs a;
  a.rows = rows.f32();
  a.row_stride = row_cols;
  a.index = index.i32();
  a.n = n;
  a.weights = has_weights ? weights.f32() : nullptr;
  a.extra = has_extra ? extra.f32() : nullptr;
  a.tokens = tokens;
  a.cols = cols;
  a.out = out.f32_mut();
  a.out_stride = out_cols;
  combine_rows(active_isa(), a);
  return env.Undefined();
}

Napi::Value CombineBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "combineBackward";
  CombineBackwardCall c;
  if (!parse_combine_backward(info, fn, &c)) return env.Undefined();
  // With no columns every token index is valid for an empty g; otherwise it must name a row of g.
  if (c.cols != 0 && !expect_indices(env, fn, "index", c.index, c.tokens, "rows of g")) return env.Undefined();
  CombineBackwardArgs a;
  a.g = c.g.f32();
  a.index = c.index.i32();
  a.n = c.index.length;
  a.cols = c.cols;
  a.weights = c.weights.f32();
  a.rows = c.rows.f32();
  a.grad_rows = c.has_grad_rows ? c.grad_rows.f32_mut() : nullptr;
  a.grad_weights = c.has_grad_weights ? c.grad_weights.f32_mut() : nullptr;
  combine_backward(active_isa(), a);
  return env.Undefined();
}

Napi::Value ScatterPairs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "scatterPairs";
  ArrayArg values, index, experts, out;
  size_t stride = 0, num_experts = 0, need = 0;
  if (!expect_arity(info, fn, 6) || !expect_array(info, fn, 0, "values", {kF32}, &values) ||
      !expect_size(info, fn, 1, "stride", &stride) || !expect_array(info, fn, 2, "index", {kI32}, &index) ||
      !expect_array(info, fn, 3, "experts", {kI32}, &experts) || !expect_size(info, fn, 4, "numExperts", &num_experts, 2147483647.0) ||
      !expect_array(info, fn, 5, "out", {kF32}, &out)) {
    return env.Undefined();
  }
  const size_t n = index.length;
  // values[j * stride] for j < n: (n - 1) * stride + 1 elements (a column of a matrix view).
  if (n != 0 && (stride == 0 || !checked_mul(env, fn, "(index.length - 1) * stride", n - 1, stride, &need) || values.length <= need)) {
    if (!env.IsExceptionPending()) {
      throw_range_error(env, std::string(fn) + ": values has " + std::to_string(values.length) + " elements, needs (index.length - 1) * stride + 1 with stride >= 1, index.length " +
                                 std::to_string(n) + ", stride " + std::to_string(stride));
    }
    return env.Undefined();
  }
  if (num_experts == 0 ? out.length != 0 : out.length % num_experts != 0) {
    throw_range_error(env, std::string(fn) + ": out has " + std::to_string(out.length) + " elements, not [tokens, numExperts]");
    return env.Undefined();
  }
  const size_t tokens = num_experts == 0 ? 0 : out.length / num_experts;
  if (!expect_length(env, fn, "experts", experts, n, "index.length") || !expect_disjoint(env, fn, "out", out, "values", values, false) ||
      !expect_indices(env, fn, "index", index, tokens, "tokens") || !expect_indices(env, fn, "experts", experts, num_experts, "numExperts")) {
    return env.Undefined();
  }
  scatter_pairs(values.f32(), stride, index.i32(), experts.i32(), n, num_experts, out.f32_mut());
  return env.Undefined();
}

}  // namespace

void RegisterDispatchExports(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"routingCounts", RoutingCounts},   {"routingOrder", RoutingOrder},       {"permuteRows", PermuteRows},
      {"combineRows", CombineRows},     {"combineBackward", CombineBackward},
      {"scatterPairs", ScatterPairs}};
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  RegisterDispatchSourcesExports(env, exports);
}

}  // namespace pleat
