// The MoE dispatch kernels of the GPU path (kernels/ops_cuda.h permute_rows, combine_rows,
// combine_backward) on host arrays, with CpuDispatch's signatures (dispatch_binding.cc) so each
// can be checked against its CPU twin: staged through device memory on stream 0 as the other
// kernels of cuda_ops_binding.cc, which registers these.
//
//   permuteRows(src, cols, index, out, outCols, probs, experts, numExperts, probsOut)   as
//                  CpuDispatch's: the rows, a prob column (outCols = cols + 1) and / or probsOut
//   combineRows(rows, rowCols, index, weights, tokens, cols, out)   the MoE unpermute, as
//                  CpuDispatch's combineRows without the extra column (weights may be null)
//   combineBackward(g, index, cols, weights, rows, gradRows, gradWeights)   the unpermute's
//                  backward, CpuDispatch's arguments and checks: g [T, cols], rows [N, cols],
//                  weights [N]; gradRows [N, cols] and gradWeights [N], either null
// Wrong types or lengths are TypeErrors / RangeErrors thrown before any device work; without a
// GPU every call throws "no device: ...".
#include "cuda_dispatch_binding.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dispatch_args.h"
#include "device_staging.h"
#include "kernels/ops_cuda.h"
#include "napi_args.h"

namespace pleat {

namespace {

// Every entry of `index` in [0, bound), else a RangeError naming the first outside.
bool indices_below(Napi::Env env, const char* fn, const char* name, const ArrayArg& index, size_t bound) {
  for (size_t i = 0; i < index.length; ++i) {
    const int32_t v = index.i32()[i];
    if (v < 0 || static_cast<size_t>(v) >= bound) {
      return throw_range_error(env, std::string(fn) + ": " + name + "[" + std::to_string(i) + "] = " + std::to_string(v) + " is out of range [0, " + std::to_string(bound) + ")");
    }
  }
  return true;
}

Napi::Value PermuteRows(const Napi::CallbackInfo& info) {
  const char* fn = "permuteRows";
  Napi::Env env = info.Env();
  ArrayArg src, index, out, probs, experts, probs_out;
  double cols_arg = 0, out_cols_arg = 0, experts_arg = 0;
  bool has_probs = false, has_experts = false, has_probs_out = false;
  if (!expect_array(info, fn, 0, "src", {napi_float32_array}, &src) || !expect_number(info, fn, 1, "cols", &cols_arg) ||
      !expect_array(info, fn, 2, "index", {napi_int32_array}, &index) || !expect_array(info, fn, 3, "out", {napi_float32_array}, &out) ||
      !expect_number(info, fn, 4, "outCols", &out_cols_arg) || !optional_array(info, fn, 5, "probs", {napi_float32_array}, &probs, &has_probs) ||
      !optional_array(info, fn, 6, "experts", {napi_int32_array}, &experts, &has_experts) || !expect_number(info, fn, 7, "numExperts", &experts_arg) ||
      !optional_array(info, fn, 8, "probsOut", {napi_float32_array}, &probs_out, &has_probs_out))
    return env.Undefined();
  const size_t cols = static_cast<size_t>(cols_arg), out_cols = static_cast<size_t>(out_cols_arg), e = static_cast<size_t>(experts_arg), n = index.length;
  const bool wants_probs = out_cols == cols + 1 || has_probs_out;
  if (cols_arg < 0 || (out_cols != cols && out_cols != cols + 1) || out.length != n * out_cols || (cols == 0 ? src.length != 0 : src.length % cols != 0)) {
    throw_range_error(env, std::string(fn) + ": outCols must be cols or cols + 1, out index.length * outCols elements and src whole rows of cols");
    return env.Undefined();
  }
  if (wants_probs != has_probs || has_probs != has_experts) {
    throw_type_error(env, std::string(fn) + ": probs and experts are given exactly when a prob column or probsOut is asked for");
    return env.Undefined();
  }
  size_t tokens = cols == 0 ? 0 : src.length / cols;
  if (has_probs) {
    if (e == 0 || probs.length % e != 0 || (cols != 0 && probs.length / e != tokens) || experts.length != n || (has_probs_out && probs_out.length != n)) {
      throw_range_error(env, std::string(fn) + ": probs must be [tokens, numExperts], experts and probsOut index.length");
      return env.Undefined();
    }
    tokens = probs.length / e;
    if (!indices_below(env, fn, "experts", experts, e)) return env.Undefined();
  }
  // Without columns or probs nothing is read, so any index is harmless.
  if ((cols != 0 || has_probs) && !indices_below(env, fn, "index", index, tokens)) return env.Undefined();
  return run_on_device(info, fn,
                       {{&src, Way::in}, {&index, Way::in}, {&out, Way::out}, {has_probs ? &probs : nullptr, Way::in}, {has_experts ? &experts : nullptr, Way::in},
                        {has_probs_out ? &probs_out : nullptr, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         return permute_rows_launch(d.f32(0), cols, d.i32(1), n, d.f32(2), out_cols, d.f32(3), d.i32(4), e, d.f32(5), s);
                       });
}

Napi::Value CombineRows(const Napi::CallbackInfo& info) {
  const char* fn = "combineRows";
  Napi::Env env = info.Env();
  ArrayArg rows, index, weights, out;
  double row_cols = 0, tokens = 0, cols = 0;
  const bool weighted = info.Length() > 3 && !info[3].IsNull();
  if (!expect_array(info, fn, 0, "rows", {napi_float32_array}, &rows) || !expect_number(info, fn, 1, "rowCols", &row_cols) ||
      !expect_array(info, fn, 2, "index", {napi_int32_array}, &index) ||
      (weighted && !expect_array(info, fn, 3, "weights", {napi_float32_array}, &weights)) || !expect_number(info, fn, 4, "tokens", &tokens) ||
      !expect_number(info, fn, 5, "cols", &cols) || !expect_array(info, fn, 6, "out", {napi_float32_array}, &out))
    return env.Undefined();
  const size_t n = index.length, rc = static_cast<size_t>(row_cols), t = static_cast<size_t>(tokens), c = static_cast<size_t>(cols);
  if (rows.length != n * rc || c > rc || out.length != t * c || (weighted && weights.length != n)) {
    throw_range_error(env, std::string(fn) + ": rows need index.length * rowCols elements, cols <= rowCols, out tokens * cols, weights index.length");
    return env.Undefined();
  }
  // Token t's rows in increasing j, as a CSR list.
  StagedRowLists lists;
  if (!staged_row_lists(env, fn, index, t, "a token", &lists)) return env.Undefined();
  const ArrayArg &off = lists.offsets, &ord = lists.order;
  return run_on_device(info, fn, {{&rows, Way::in}, {&off, Way::in}, {&ord, Way::in}, {weighted ? &weights : nullptr, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         return combine_rows_launch(d.f32(0), rc, d.i32(1), d.i32(2), d.f32(3), t, c, d.f32(4), s);
                       });
}

Napi::Value CombineBackward(const Napi::CallbackInfo& info) {
  const char* fn = "combineBackward";
  Napi::Env env = info.Env();
  // The CPU binding's checks, overlaps included: the staged copies would make an aliased call
  // work here, but a call must be accepted or refused alike on both twins.
  CombineBackwardCall c;
  if (!parse_combine_backward(info, fn, &c)) return env.Undefined();
  // With no columns no row of g is read, so any index is harmless (as on the CPU).
  if (c.cols != 0 && !indices_below(env, fn, "index", c.index, c.tokens)) return env.Undefined();
  const size_t n = c.index.length, cols = c.cols;
  // weights travel only for gradRows and rows only for gradWeights: the launcher reads each only
  // with its output, and the unused one costs no copy.
  return run_on_device(info, fn,
                       {{&c.g, Way::in}, {&c.index, Way::in}, {c.has_grad_rows ? &c.weights : nullptr, Way::in}, {c.has_grad_weights ? &c.rows : nullptr, Way::in},
                        {c.has_grad_rows ? &c.grad_rows : nullptr, Way::out}, {c.has_grad_weights ? &c.grad_weights : nullptr, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         return combine_backward_launch(d.f32(0), d.i32(1), n, cols, d.f32(2), d.f32(3), d.f32(4), d.f32(5), s);
                       });
}

}  // namespace

void RegisterCudaDispatchExports(Napi::Env env, Napi::Object exports) {
  exports.Set("permuteRows", Napi::Function::New(env, PermuteRows, "permuteRows"));
  exports.Set("combineRows", Napi::Function::New(env, CombineRows, "combineRows"));
  exports.Set("combineBackward", Napi::Function::New(env, CombineBackward, "combineBackward"));
}

}  // namespace pleat
