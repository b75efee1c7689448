// Argument checks the dispatch kernels' bindings share (dispatch_binding.cc,
// dispatch_sources_binding.cc, and the CUDA twins' cuda_dispatch_binding.cc, which must accept or
// refuse a call alike).
#pragma once

#include <napi.h>

#include <initializer_list>
#include <string>

#include "kernels/rows.h"
#include "napi_args.h"

namespace pleat {

// Every entry of `index` below `bound`, else a RangeError naming the first outside.
inline bool expect_indices(Napi::Env env, const char* fn, const char* name, const ArrayArg& index, size_t bound, const char* what) {
  const ptrdiff_t bad = first_bad_index(index.i32(), index.length, bound);
  if (bad < 0) return true;
  return throw_range_error(env, std::string(fn) + ": " + name + "[" + std::to_string(bad) + "] = " + std::to_string(index.i32()[bad]) +
                                    " is out of range [0, " + std::to_string(bound) + ") (" + what + ")");
}

// An optional typed array: null or undefined gives an empty ArrayArg with value unset.
inline bool optional_array(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name,
                           std::initializer_list<napi_typedarray_type> allowed, ArrayArg* out, bool* present) {
  *present = !(info[index].IsNull() || info[index].IsUndefined());
  if (!*present) return true;
  return expect_array(info, fn, index, name, allowed, out);
}

// combineBackward(g, index, cols, weights, rows, gradRows | null, gradWeights | null), checked:
// g whole rows of `cols` (`tokens` of them), rows index.length * cols, weights index.length,
// each output of its length and overlapping no input nor the other. The index check is the
// caller's (the CPU's vector scan is not linked into the CUDA addon).
struct CombineBackwardCall {
  ArrayArg g, index, weights, rows, grad_rows, grad_weights;
  size_t cols = 0, tokens = 0;
  bool has_grad_rows = false, has_grad_weights = false;
};

inline bool parse_combine_backward(const Napi::CallbackInfo& info, const char* fn, CombineBackwardCall* c) {
  Napi::Env env = info.Env();
  constexpr auto f32 = napi_float32_array;
  size_t need = 0;
  if (!expect_arity(info, fn, 7) || !expect_array(info, fn, 0, "g", {f32}, &c->g) || !expect_array(info, fn, 1, "index", {napi_int32_array}, &c->index) ||
      !expect_size(info, fn, 2, "cols", &c->cols) || !expect_array(info, fn, 3, "weights", {f32}, &c->weights) ||
      !expect_array(info, fn, 4, "rows", {f32}, &c->rows) || !optional_array(info, fn, 5, "gradRows", {f32}, &c->grad_rows, &c->has_grad_rows) ||
      !optional_array(info, fn, 6, "gradWeights", {f32}, &c->grad_weights, &c->has_grad_weights))
    return false;
  const size_t n = c->index.length, cols = c->cols;
  if (cols == 0 ? c->g.length != 0 : c->g.length % cols != 0)
    return throw_range_error(env, std::string(fn) + ": g has " + std::to_string(c->g.length) + " elements, not a whole number of rows of " + std::to_string(cols));
  c->tokens = cols == 0 ? 0 : c->g.length / cols;
  const auto apart = [&](const char* name, const ArrayArg& out) {
    return expect_disjoint(env, fn, name, out, "g", c->g, false) && expect_disjoint(env, fn, name, out, "rows", c->rows, false) &&
           expect_disjoint(env, fn, name, out, "weights", c->weights, false);
  };
  return checked_mul(env, fn, "index.length * cols", n, cols, &need) && expect_length(env, fn, "rows", c->rows, need, "index.length * cols") &&
         expect_length(env, fn, "weights", c->weights, n, "index.length") &&
         (!c->has_grad_rows || (expect_length(env, fn, "gradRows", c->grad_rows, need, "index.length * cols") && apart("gradRows", c->grad_rows))) &&
         (!c->has_grad_weights || (expect_length(env, fn, "gradWeights", c->grad_weights, n, "index.length") && apart("gradWeights", c->grad_weights))) &&
         (!c->has_grad_rows || !c->has_grad_weights || expect_disjoint(env, fn, "gradRows", c->grad_rows, "gradWeights", c->grad_weights, false));
}

}  // namespace pleat
