// The arguments the gated activations' bindings share (swigluBackward in tensor_binding.cc,
// gatedActivation(Backward) in glu_binding.cc and cuda_gated_sinks_binding.cc): for the
// backwards, gate, up and grad Float32Arrays of one length at arguments 0-2, then the optional
// outputs dGate and dUp, each a Float32Array of that length disjoint from the inputs and each
// other, or null when not wanted; the options alpha, offset and limit.
#pragma once

#include <napi.h>

#include <utility>

#include "kernels/glu_options.h"
#include "napi_args.h"

namespace pleat {

struct GatedGradientArgs {
  ArrayArg gate, up, grad, dgate, dup;
  bool want_gate = false, want_up = false;
  float* dgate_out() const { return want_gate ? dgate.f32_mut() : nullptr; }
  float* dup_out() const { return want_up ? dup.f32_mut() : nullptr; }
};

// Parses arguments 0-4 into `a`; false after throwing the JS error.
inline bool parse_gated_gradients(const Napi::CallbackInfo& info, const char* fn, GatedGradientArgs* a) {
  Napi::Env env = info.Env();
  constexpr auto f32 = napi_float32_array;
  if (!expect_array(info, fn, 0, "gate", {f32}, &a->gate) || !expect_array(info, fn, 1, "up", {f32}, &a->up) ||
      !expect_array(info, fn, 2, "grad", {f32}, &a->grad) || !expect_length(env, fn, "up", a->up, a->gate.length, "gate.length") ||
      !expect_length(env, fn, "grad", a->grad, a->gate.length, "gate.length")) {
    return false;
  }
  a->want_gate = !info[3].IsNull();
  a->want_up = !info[4].IsNull();
  if ((a->want_gate && !expect_array(info, fn, 3, "dGate", {f32}, &a->dgate)) || (a->want_up && !expect_array(info, fn, 4, "dUp", {f32}, &a->dup))) {
    return false;
  }
  for (const auto& [name, out] : {std::pair<const char*, const ArrayArg*>{"dGate", &a->dgate}, {"dUp", &a->dup}}) {
    if (out->value.IsEmpty() || out->value.IsUndefined()) continue;
    if (!expect_length(env, fn, name, *out, a->gate.length, "gate.length") || !expect_disjoint(env, fn, name, *out, "gate", a->gate, false) ||
        !expect_disjoint(env, fn, name, *out, "up", a->up, false) || !expect_disjoint(env, fn, name, *out, "grad", a->grad, false)) {
      return false;
    }
  }
  return !(a->want_gate && a->want_up && !expect_disjoint(env, fn, "dGate", a->dgate, "dUp", a->dup, false));
}

// The gated activation's options from arguments `first` .. `first + 2` (alpha, offset, limit or
// null for no clamp); false after throwing a TypeError.
inline bool parse_glu_options(const Napi::CallbackInfo& info, const char* fn, size_t first, GluOptions* o) {
  o->clamped = !info[first + 2].IsNull();
  o->limit = 0.0;
  if (!expect_number(info, fn, first, "alpha", &o->alpha) || !expect_number(info, fn, first + 1, "offset", &o->offset)) return false;
  return !o->clamped || expect_number(info, fn, first + 2, "limit", &o->limit);
}

}  // namespace pleat
