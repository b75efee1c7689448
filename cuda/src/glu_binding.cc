// The Node-API binding of the gated MLP activation (kernels/gated_activation.h). Typed wrappers:
// src/native/CpuOptional.ts.
//
//   gatedActivation(gate, up, out, alpha, offset, limit) -> undefined
//   gatedActivationBackward(gate, up, grad, dGate, dUp, alpha, offset, limit) -> undefined
//       Float32Arrays of one length; dGate or dUp null when not wanted; limit null for no clamp.
#include "glu_binding.h"

#include <cmath>

#include "gated_args.h"
#include "kernels/gated_activation.h"
#include "napi_args.h"

namespace pleat {

namespace {

Napi::Value GatedActivation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gatedActivation";
  ArrayArg gate, up, out;
  GluOptions o{};
  if (!expect_arity(info, fn, 6) || !expect_array(info, fn, 0, "gate", {napi_float32_array}, &gate) || !expect_array(info, fn, 1, "up", {napi_float32_array}, &up) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_length(env, fn, "up", up, gate.length, "gate.length") ||
      !expect_length(env, fn, "out", out, gate.length, "gate.length") || !expect_disjoint(env, fn, "out", out, "gate", gate, true) ||
      !expect_disjoint(env, fn, "out", out, "up", up, true) || !parse_glu_options(info, fn, 3, &o)) {
    return env.Undefined();
  }
  gated_activation(active_isa(), gate.f32(), up.f32(), out.f32_mut(), gate.length, o);
  return env.Undefined();
}

Napi::Value GatedActivationBackward(const Napi::CallbackInfo& info) {
  const char* fn = "gatedActivationBackward";
  GatedGradientArgs a;
  GluOptions o{};
  if (!expect_arity(info, fn, 8) || !parse_gated_gradients(info, fn, &a) || !parse_glu_options(info, fn, 5, &o)) return info.Env().Undefined();
  gated_activation_backward(active_isa(), a.gate.f32(), a.up.f32(), a.grad.f32(), a.dgate_out(), a.dup_out(), a.gate.length, o);
  return info.Env().Undefined();
}

}  // namespace

void RegisterGluExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gatedActivation", Napi::Function::New(env, GatedActivation, "gatedActivation"));
  exports.Set("gatedActivationBackward", Napi::Function::New(env, GatedActivationBackward, "gatedActivationBackward"));
}

}  // namespace pleat
