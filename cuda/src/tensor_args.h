// Argument parsing of the tensor kernels, shared by their sync and async bindings in
// binding.cc: each parse_* checks types, dims and lengths (throwing the JS error and returning
// false on the first problem) and fills the kernel's argument struct.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "async_work.h"
#include "attn_shape_args.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "napi_args.h"

namespace pleat {

constexpr auto kF32 = napi_float32_array;
constexpr auto kF64 = napi_float64_array;
constexpr auto kI32 = napi_int32_array;

// Runs a kernel body; an exception (allocation failure in a reference path) becomes the returned
// message instead of unwinding into Node.
inline std::string guarded(const std::function<std::string()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return e.what();
  }
}

// A validated call: the kernel closure and the arrays it touches.
struct Call {
  std::function<std::string()> run;
  std::vector<Napi::Value> keep;
};

inline Napi::Value run_sync(Napi::Env env, const char* fn, const Call& call) {
  const std::string error = guarded(call.run);
  if (!error.empty()) Napi::Error::New(env, std::string(fn) + ": " + error).ThrowAsJavaScriptException();
  return env.Undefined();
}

inline Napi::Value run_async(Napi::Env env, const char* fn, const Call& call) {
  auto* work = new KernelWork(env, fn, call.run, call.keep);
  const Napi::Promise promise = work->Promise();
  work->Queue();  // libuv owns it now; it deletes itself after settling
  return promise;
}

// `arity` 12, or more for a binding that reads arguments of its own after the twelve.
inline bool parse_matmul(const Napi::CallbackInfo& info, const char* fn, GemmArgs* g, Call* call, size_t arity = 12) {
  Napi::Env env = info.Env();
  ArrayArg a, b, out;
  if (!expect_arity(info, fn, arity) || !expect_array(info, fn, 0, "a", {kF32}, &a) ||
      !expect_array(info, fn, 1, "b", {kF32}, &b) || !expect_array(info, fn, 2, "out", {kF32}, &out) ||
      !expect_size(info, fn, 3, "batch", &g->batch) || !expect_size(info, fn, 4, "m", &g->m) ||
      !expect_size(info, fn, 5, "n", &g->n) || !expect_size(info, fn, 6, "k", &g->k) ||
      !expect_bool(info, fn, 7, "transA", &g->trans_a) || !expect_bool(info, fn, 8, "transB", &g->trans_b) ||
      !expect_size(info, fn, 9, "strideA", &g->stride_a) || !expect_size(info, fn, 10, "strideB", &g->stride_b) ||
      !expect_bool(info, fn, 11, "accumulate", &g->accumulate)) {
    return false;
  }
  size_t mn = 0, mk = 0, kn = 0, total = 0, need_a = 0, need_b = 0;
  if (!checked_mul(env, fn, "m * n", g->m, g->n, &mn) || !checked_mul(env, fn, "batch * m * n", g->batch, mn, &total) ||
      !checked_mul(env, fn, "m * k", g->m, g->k, &mk) || !checked_mul(env, fn, "k * n", g->k, g->n, &kn) ||
      !expect_length(env, fn, "out", out, total, "batch * m * n")) {
    return false;
  }
  // An operand is read only when the product has terms: batch, m, n and k all non-zero.
  if (total != 0 && g->k != 0) {
    if (!checked_mul(env, fn, "(batch - 1) * strideA", g->batch - 1, g->stride_a, &need_a) ||
        !checked_mul(env, fn, "(batch - 1) * strideB", g->batch - 1, g->stride_b, &need_b)) {
      return false;
    }
    need_a += mk;
    need_b += kn;
  }
  if (a.length < need_a) {
    return throw_range_error(env, std::string(fn) + ": a has " + std::to_string(a.length) +
                                      " elements, needs (batch - 1) * strideA + m * k = " + std::to_string(need_a));
  }
  if (b.length < need_b) {
    return throw_range_error(env, std::string(fn) + ": b has " + std::to_string(b.length) +
                                      " elements, needs (batch - 1) * strideB + k * n = " + std::to_string(need_b));
  }
  if (!expect_disjoint(env, fn, "out", out, "a", a, false) || !expect_disjoint(env, fn, "out", out, "b", b, false)) {
    return false;
  }
  g->a = a.f32();
  g->b = b.f32();
  g->out = out.f32_mut();
  call->keep = {a.value, b.value, out.value};
  return true;
}

// Optional Int32Array positions: null / undefined, or s or batch * s entries (kept alive).
inline bool parse_positions(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name,
                     size_t batch, size_t s, const int32_t** out, size_t* len, std::vector<Napi::Value>* keep) {
  ArrayArg p;
  bool present = false;
  if (!parse_attn_positions(info, fn, index, name, batch, s, &p, &present)) return false;
  *out = present ? p.i32() : nullptr;
  *len = present ? p.length : 0;
  if (present) keep->push_back(p.value);
  return true;
}

// Dims b, sq, sk, hq, hkv, d, dv, scale, causal, qpos, kpos, qfirst from argument `first` on.
inline bool parse_attn_dims(const Napi::CallbackInfo& info, const char* fn, size_t first, AttnArgs* a,
                     std::vector<Napi::Value>* keep) {
  if (!parse_attn_shape(info, fn, first, a)) return false;
  return parse_positions(info, fn, first + 9, "queryPositions", a->b, a->sq, &a->qpos, &a->qpos_len, keep) &&
         parse_positions(info, fn, first + 10, "keyPositions", a->b, a->sk, &a->kpos, &a->kpos_len, keep) &&
         parse_positions(info, fn, first + 11, "queryFirstKeys", a->b, a->sq, &a->qfirst, &a->qfirst_len, keep);
}

// Checks an attention tensor's type and length; `formula` names the dims it is built from.
inline bool attn_tensor(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, size_t want,
                 const char* formula, std::initializer_list<napi_typedarray_type> types, ArrayArg* out,
                 std::vector<Napi::Value>* keep) {
  if (!expect_array(info, fn, index, name, types, out) ||
      !expect_length(info.Env(), fn, name, *out, want, formula)) {
    return false;
  }
  keep->push_back(out->value);
  return true;
}

}  // namespace pleat
