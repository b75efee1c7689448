// The dispatch kernels whose rows lie in several buffers (an exchange's senders): typed
// wrappers in src/native/CpuDispatch.ts, checked like dispatch_binding.cc's.
//
//   combineRowsFrom(sources, source, sourceRow, index, weights, tokens, cols, out)
//       combineRows on rows that lie in several buffers: row j is row sourceRow[j] of
//       sources[source[j]] (each a Float32Array of rows of cols floats), times weights[j]
//       (weights [N] or null)
//   gatherRowsFrom(sources, source, sourceRow, cols, out)
//       out [N, cols] row j = row sourceRow[j] of sources[source[j]] (an exchange's result
//       gathered from every sender in one call)
#include "dispatch_binding.h"

#include <string>
#include <vector>

#include "dispatch_args.h"
#include "kernels/dispatch.h"
#include "napi_args.h"
#include "tensor_args.h"

namespace pleat {
namespace {

// The rows of a call whose rows lie in several buffers: info[0] is the array of Float32Array
// sources, info[1] (source) and info[2] (sourceRow) Int32Array of `n` entries; row j is row
// sourceRow[j] of sources[source[j]] (rows of `cols` floats). None may overlap `out`. Fills
// `ptrs` with each row's start; false (with the error thrown) on a bad argument.
bool rows_from_sources(const Napi::CallbackInfo& info, const char* fn, size_t n, size_t cols, const ArrayArg& out, std::vector<const float*>* ptrs) {
  Napi::Env env = info.Env();
  ArrayArg source, source_row;
  if (!info[0].IsArray()) return throw_type_error(env, std::string(fn) + ": sources must be an array of Float32Array, got " + describe(info[0]));
  if (!expect_array(info, fn, 1, "source", {kI32}, &source) || !expect_array(info, fn, 2, "sourceRow", {kI32}, &source_row) ||
      !expect_length(env, fn, "source", source, n, "the rows") || !expect_length(env, fn, "sourceRow", source_row, n, "the rows")) {
    return false;
  }
  const Napi::Array list = info[0].As<Napi::Array>();
  const uint32_t count = list.Length();
  std::vector<const float*> bases(count);
  std::vector<size_t> rows_in(count);
  for (uint32_t s = 0; s < count; ++s) {
    const Napi::Value v = list.Get(s);
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (!v.IsTypedArray() || napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float32_array) {
      return throw_type_error(env, std::string(fn) + ": sources[" + std::to_string(s) + "] must be a Float32Array, got " + describe(v));
    }
    const ArrayArg view{type, length, length == 0 ? nullptr : static_cast<uint8_t*>(data), v};
    if (!expect_disjoint(env, fn, "out", out, "a source", view, false)) return false;
    bases[s] = view.f32();
    rows_in[s] = cols == 0 ? 0 : length / cols;
  }
  if (!expect_indices(env, fn, "source", source, count, "sources.length")) return false;
  ptrs->resize(n);
  for (size_t j = 0; j < n; ++j) {
    const size_t s = static_cast<size_t>(source.i32()[j]);
    const int32_t r = source_row.i32()[j];
    // Rows of no columns hold nothing to read: any row number is as good as another.
    if (cols != 0 && (r < 0 || static_cast<size_t>(r) >= rows_in[s])) {
      return throw_range_error(env, std::string(fn) + ": sourceRow[" + std::to_string(j) + "] = " + std::to_string(r) + " is out of range [0, " +
                                        std::to_string(rows_in[s]) + ") (the rows of sources[" + std::to_string(s) + "])");
    }
    (*ptrs)[j] = cols == 0 ? bases[s] : bases[s] + static_cast<size_t>(r) * cols;
  }
  return true;
}

Napi::Value CombineRowsFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "combineRowsFrom";
  ArrayArg index, weights, out;
  bool has_weights = false;
  size_t tokens = 0, cols = 0, n_out = 0;
  if (!expect_arity(info, fn, 8) || !expect_array(info, fn, 3, "index", {kI32}, &index) ||
      !optional_array(info, fn, 4, "weights", {kF32}, &weights, &has_weights) || !expect_size(info, fn, 5, "tokens", &tokens, 2147483647.0) ||
      !expect_size(info, fn, 6, "cols", &cols) || !expect_array(info, fn, 7, "out", {kF32}, &out) ||
      !checked_mul(env, fn, "tokens * cols", tokens, cols, &n_out) || !expect_length(env, fn, "out", out, n_out, "tokens * cols") ||
      !expect_indices(env, fn, "index", index, tokens, "tokens") ||
      (has_weights && (!expect_length(env, fn, "weights", weights, index.length, "index.length") ||
                       !expect_disjoint(env, fn, "out", out, "weights", weights, false)))) {
    return env.Undefined();
  }
  std::vector<const float*> row_ptrs;
  if (!rows_from_sources(info, fn, index.length, cols, out, &row_ptrs)) return env.Undefined();
  CombineArgs a;
  a.row_ptrs = row_ptrs.data();
  a.index = index.i32();
  a.n = index.length;
  a.weights = has_weights ? weights.f32() : nullptr;
  a.tokens = tokens;
  a.cols = cols;
  a.out = out.f32_mut();
  a.out_stride = cols;
  combine_rows(active_isa(), a);
  return env.Undefined();
}

Napi::Value GatherRowsFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gatherRowsFrom";
  ArrayArg source, out;
  size_t cols = 0, n_out = 0;
  if (!expect_arity(info, fn, 5) || !expect_array(info, fn, 1, "source", {kI32}, &source) || !expect_size(info, fn, 3, "cols", &cols) ||
      !expect_array(info, fn, 4, "out", {kF32}, &out) || !checked_mul(env, fn, "source.length * cols", source.length, cols, &n_out) ||
      !expect_length(env, fn, "out", out, n_out, "source.length * cols")) {
    return env.Undefined();
  }
  std::vector<const float*> src_ptrs;
  if (!rows_from_sources(info, fn, source.length, cols, out, &src_ptrs)) return env.Undefined();
  GatherExtraArgs a;
  a.src_ptrs = src_ptrs.data();
  a.n = source.length;
  a.cols = cols;
  a.out = out.f32_mut();
  a.out_stride = cols;
  gather_rows_extra(active_isa(), a);
  return env.Undefined();
}

}  // namespace

void RegisterDispatchSourcesExports(Napi::Env env, Napi::Object exports) {
  exports.Set("combineRowsFrom", Napi::Function::New(env, CombineRowsFrom, "combineRowsFrom"));
  exports.Set("gatherRowsFrom", Napi::Function::New(env, GatherRowsFrom, "gatherRowsFrom"));
}

}  // namespace pleat
