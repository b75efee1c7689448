// The Node-API binding of the gated MLP activation (kernels/gated_activation.h). Typed wrappers:
// src/native/CpuOptional.ts.
//
//   gatedActivation(gate, up, out, alpha, offset, limit) -> undefined
//   gatedActivationBackward(gate, up, grad, dGate, dUp, alpha, offset, limit) -> undefined
//       Float32Arrays of one length; dGate or dUp null when not wanted; limit null for no clamp.
#include "glu_binding.h"

#include <cmath>
#include <utility>

#include "kernels/gated_activation.h"
#include "napi_args.h"

namespace pleat {

namespace {

// The options from arguments `first` .. `first + 2` (alpha, offset, limit or null); false after
// throwing a TypeError.
bool options_of(const Napi::CallbackInfo& info, const char* fn, size_t first, GluOptions* o) {
  o->clamped = !info[first + 2].IsNull();
  o->limit = 0.0;
  if (!expect_number(info, fn, first, "alpha", &o->alpha) || !expect_number(info, fn, first + 1, "offset", &o->offset)) return false;
  return !o->clamped || expect_number(info, fn, first + 2, "limit", &o->limit);
}

Napi::Value GatedActivation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gatedActivation";
  ArrayArg gate, up, out;
  GluOptions o{};
  if (!expect_arity(info, fn, 6) || !expect_array(info, fn, 0, "gate", {napi_float32_array}, &gate) || !expect_array(info, fn, 1, "up", {napi_float32_array}, &up) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_length(env, fn, "up", up, gate.length, "gate.length") ||
      !expect_length(env, fn, "out", out, gate.length, "gate.length") || !expect_disjoint(env, fn, "out", out, "gate", gate, true) ||
      !expect_disjoint(env, fn, "out", out, "up", up, true) || !options_of(info, fn, 3, &o)) {
    return env.Undefined();
  }
  gated_activation(active_isa(), gate.f32(), up.f32(), out.f32_mut(), gate.length, o);
  return env.Undefined();
}

Napi::Value GatedActivationBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gatedActivationBackward";
  ArrayArg gate, up, grad, dgate, dup;
  GluOptions o{};
  if (!expect_arity(info, fn, 8) || !expect_array(info, fn, 0, "gate", {napi_float32_array}, &gate) || !expect_array(info, fn, 1, "up", {napi_float32_array}, &up) ||
      !expect_array(info, fn, 2, "grad", {napi_float32_array}, &grad) || !expect_length(env, fn, "up", up, gate.length, "gate.length") ||
      !expect_length(env, fn, "grad", grad, gate.length, "gate.length") || !options_of(info, fn, 5, &o)) {
    return env.Undefined();
  }
  const bool want_gate = !info[3].IsNull(), want_up = !info[4].IsNull();
  if ((want_gate && !expect_array(info, fn, 3, "dGate", {napi_float32_array}, &dgate)) || (want_up && !expect_array(info, fn, 4, "dUp", {napi_float32_array}, &dup))) {
    return env.Undefined();
  }
  for (const auto& [name, out] : {std::pair<const char*, const ArrayArg*>{"dGate", &dgate}, {"dUp", &dup}}) {
    if (out->value.IsEmpty() || out->value.IsUndefined()) continue;
    if (!expect_length(env, fn, name, *out, gate.length, "gate.length") || !expect_disjoint(env, fn, name, *out, "gate", gate, false) ||
        !expect_disjoint(env, fn, name, *out, "up", up, false) || !expect_disjoint(env, fn, name, *out, "grad", grad, false)) {
      return env.Undefined();
    }
  }
  if (want_gate && want_up && !expect_disjoint(env, fn, "dGate", dgate, "dUp", dup, false)) return env.Undefined();
  gated_activation_backward(active_isa(), gate.f32(), up.f32(), grad.f32(), want_gate ? dgate.f32_mut() : nullptr, want_up ? dup.f32_mut() : nullptr,
                            gate.length, o);
  return env.Undefined();
}

}  // namespace

void RegisterGluExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gatedActivation", Napi::Function::New(env, GatedActivation, "gatedActivation"));
  exports.Set("gatedActivationBackward", Napi::Function::New(env, GatedActivationBackward, "gatedActivationBackward"));
}

}  // namespace pleat
