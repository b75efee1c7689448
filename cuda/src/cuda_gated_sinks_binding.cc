// The gated activation and the attention sinks' kernels (kernels/gated_sinks_cuda.h) on host
// typed arrays or device arrays (resident: used where they are), staged through device memory on
// stream 0 as the other kernels of cuda_ops_binding.cc, which registers these. Typed wrappers:
// src/native/Cuda.ts (host arrays) and src/native/CudaArrays.ts (either).
//
//   gatedActivation(gate, up, out, alpha, offset, limit)       F32 of one length; limit null: no
//                  clamp; out may be gate or up (the same view), no other overlap
//   gatedActivationBackward(gate, up, grad, dGate, dUp, alpha, offset, limit)   dGate or dUp null
//                  when not wanted; each disjoint from the inputs and the other
//   attentionSinksFold(out, lse, sinks, b, sq, hq, dv)         out F32 [b, sq, hq, dv] and lse F64
//                  [b, hq, sq] folded in place (tensor/kernels/AttentionSinks.ts fold), sinks F32 [hq]
//   attentionSinksGradient(g, out, lse, sinks, b, sq, hq, dv, dz)   AttentionSinks.ts gradient:
//                  g and out F32 [b, sq, hq, dv], lse F64 [b, hq, sq], sinks F32 [hq] -> dz F32 [hq]
// Wrong types are TypeErrors, wrong lengths RangeErrors naming the function, both thrown before
// any device work; without a GPU every call then throws "no device: ...".
#include "cuda_gated_sinks_binding.h"

#include <cuda_runtime.h>

#include <string>

#include "device_staging.h"
#include "gated_args.h"
#include "kernels/gated_sinks_cuda.h"
#include "napi_args.h"

namespace pleat {

namespace {

constexpr auto kF32 = napi_float32_array;
constexpr auto kF64 = napi_float64_array;

Napi::Value GatedActivation(const Napi::CallbackInfo& info) {
  const char* fn = "gatedActivation";
  Napi::Env env = info.Env();
  ArrayArg gate, up, out;
  GluOptions o{};
  if (!expect_array(info, fn, 0, "gate", {kF32}, &gate) || !expect_array(info, fn, 1, "up", {kF32}, &up) || !expect_array(info, fn, 2, "out", {kF32}, &out) ||
      !parse_glu_options(info, fn, 3, &o) || !expect_length(env, fn, "up", up, gate.length, "gate.length") ||
      !expect_length(env, fn, "out", out, gate.length, "gate.length") || !expect_disjoint(env, fn, "out", out, "gate", gate, true) ||
      !expect_disjoint(env, fn, "out", out, "up", up, true))
    return env.Undefined();
  // out may be gate or up (the same view): staged host arrays are separate copies, and a device
  // array is read and written at the same element by the same thread.
  return run_on_device(info, fn, {{&gate, Way::in}, {&up, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return gated_activation_launch(d.f32(0), d.f32(1), d.f32(2), gate.length, o, s); });
}

Napi::Value GatedActivationBackward(const Napi::CallbackInfo& info) {
  const char* fn = "gatedActivationBackward";
  GatedGradientArgs a;
  GluOptions o{};
  if (!parse_gated_gradients(info, fn, &a) || !parse_glu_options(info, fn, 5, &o)) return info.Env().Undefined();
  const size_t n = a.gate.length;
  return run_on_device(info, fn,
                       {{&a.gate, Way::in}, {&a.up, Way::in}, {&a.grad, Way::in}, {a.want_gate ? &a.dgate : nullptr, Way::out}, {a.want_up ? &a.dup : nullptr, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return gated_activation_backward_launch(d.f32(0), d.f32(1), d.f32(2), d.f32(3), d.f32(4), n, o, s); });
}

// The sinks' dims from arguments first .. first + 3 (b, sq, hq, dv) and the element counts of
// out (b * sq * hq * dv) and lse (b * hq * sq); false after throwing.
struct SinkDims {
  size_t b = 0, sq = 0, hq = 0, dv = 0, rows = 0, values = 0;
};
bool sink_dims(const Napi::CallbackInfo& info, const char* fn, size_t first, SinkDims* s) {
  double b = 0, sq = 0, hq = 0, dv = 0;
  if (!expect_whole(info, fn, first, "b", &b) || !expect_whole(info, fn, first + 1, "sq", &sq) || !expect_whole(info, fn, first + 2, "hq", &hq) ||
      !expect_whole(info, fn, first + 3, "dv", &dv))
    return false;
  s->b = static_cast<size_t>(b);
  s->sq = static_cast<size_t>(sq);
  s->hq = static_cast<size_t>(hq);
  s->dv = static_cast<size_t>(dv);
  size_t heads = 0;
  Napi::Env env = info.Env();
  return checked_mul(env, fn, "b * hq * sq", s->b, s->hq, &heads) && checked_mul(env, fn, "b * hq * sq", heads, s->sq, &s->rows) &&
         checked_mul(env, fn, "b * sq * hq * dv", s->rows, s->dv, &s->values);
}

Napi::Value AttentionSinksFold(const Napi::CallbackInfo& info) {
  const char* fn = "attentionSinksFold";
  Napi::Env env = info.Env();
  ArrayArg out, lse, sinks;
  SinkDims s;
  if (!expect_array(info, fn, 0, "out", {kF32}, &out) || !expect_array(info, fn, 1, "lse", {kF64}, &lse) || !expect_array(info, fn, 2, "sinks", {kF32}, &sinks) ||
      !sink_dims(info, fn, 3, &s) || !expect_length(env, fn, "out", out, s.values, "b * sq * hq * dv") || !expect_length(env, fn, "lse", lse, s.rows, "b * hq * sq") ||
      !expect_length(env, fn, "sinks", sinks, s.hq, "hq"))
    return env.Undefined();
  return run_on_device(info, fn, {{&out, Way::in_out}, {&lse, Way::in_out}, {&sinks, Way::in}}, [&](const DevicePointers& d, cudaStream_t st) {
    return attention_sinks_fold_launch(d.f32(0), d.f64(1), d.f32(2), s.b, s.sq, s.hq, s.dv, st);
  });
}

Napi::Value AttentionSinksGradient(const Napi::CallbackInfo& info) {
  const char* fn = "attentionSinksGradient";
  Napi::Env env = info.Env();
  ArrayArg g, out, lse, sinks, dz;
  SinkDims s;
  if (!expect_array(info, fn, 0, "g", {kF32}, &g) || !expect_array(info, fn, 1, "out", {kF32}, &out) || !expect_array(info, fn, 2, "lse", {kF64}, &lse) ||
      !expect_array(info, fn, 3, "sinks", {kF32}, &sinks) || !sink_dims(info, fn, 4, &s) || !expect_array(info, fn, 8, "dz", {kF32}, &dz) ||
      !expect_length(env, fn, "g", g, s.values, "b * sq * hq * dv") || !expect_length(env, fn, "out", out, s.values, "b * sq * hq * dv") ||
      !expect_length(env, fn, "lse", lse, s.rows, "b * hq * sq") || !expect_length(env, fn, "sinks", sinks, s.hq, "hq") || !expect_length(env, fn, "dz", dz, s.hq, "hq"))
    return env.Undefined();
  // Device scratch for the rows' terms (its host side is never read or written).
  const ArrayArg terms{kF64, s.rows, nullptr, Napi::Value()};
  return run_on_device(info, fn, {{&g, Way::in}, {&out, Way::in}, {&lse, Way::in}, {&sinks, Way::in}, {&dz, Way::out}, {&terms, Way::scratch}},
                       [&](const DevicePointers& d, cudaStream_t st) {
                         return attention_sinks_gradient_launch(d.f32(0), d.f32(1), d.f64(2), d.f32(3), s.b, s.sq, s.hq, s.dv, d.f64(5), d.f32(4), st);
                       });
}

}  // namespace

void RegisterCudaGatedSinksExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gatedActivation", Napi::Function::New(env, GatedActivation, "gatedActivation"));
  exports.Set("gatedActivationBackward", Napi::Function::New(env, GatedActivationBackward, "gatedActivationBackward"));
  exports.Set("attentionSinksFold", Napi::Function::New(env, AttentionSinksFold, "attentionSinksFold"));
  exports.Set("attentionSinksGradient", Napi::Function::New(env, AttentionSinksGradient, "attentionSinksGradient"));
}

}  // namespace pleat
