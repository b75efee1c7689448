// Attention on the device with the CPU kernels' signatures (src/native/Cpu.ts attention and
// attentionBackward), so each is checked against its CPU twin: host arrays copied to device
// memory, the kernels of kernels/attention_cuda.h on stream 0, the outputs copied back.
//
//   attention(q, k, v, out, lse, b, sq, sk, hq, hkv, d, dv, scale, causal, queryPositions, keyPositions,
//             queryFirstKeys)
//   attentionBackward(q, k, v, out, gradOut, lse, gradQ, gradK, gradV, b, ..., queryFirstKeys)
// lse: Float32Array or Float64Array [b * hq * sq] (null allowed in the forward); positions and
// first keys: null, or Int32Array of S or B * S entries (Sq for queryFirstKeys). Wrong types or lengths throw before any device
// work; without a GPU every call throws "no device: ...".
#include "attention_cuda_binding.h"

#include <string>

#include "attn_shape_args.h"
#include "device_staging.h"
#include "kernels/attention_cuda.h"
#include "napi_args.h"

namespace pleat {

namespace {

// The position arrays of a call, to stage: query positions, key positions, query first keys.
struct Positions {
  ArrayArg qpos, kpos, qfirst;
  bool has_qpos = false, has_kpos = false, has_qfirst = false;
};

// Dims from argument `first` on (b, sq, sk, hq, hkv, d, dv, scale, causal, queryPositions,
// keyPositions, queryFirstKeys), as the CPU binding checks them; the positions as arrays to stage.
bool parse_shape(const Napi::CallbackInfo& info, const char* fn, size_t first, element::AttnShape* a, Positions* p) {
  if (!parse_attn_shape(info, fn, first, a) || !parse_attn_positions(info, fn, first + 9, "queryPositions", a->b, a->sq, &p->qpos, &p->has_qpos) ||
      !parse_attn_positions(info, fn, first + 10, "keyPositions", a->b, a->sk, &p->kpos, &p->has_kpos) ||
      !parse_attn_positions(info, fn, first + 11, "queryFirstKeys", a->b, a->sq, &p->qfirst, &p->has_qfirst)) {
    return false;
  }
  a->qpos_len = p->has_qpos ? p->qpos.length : 0;
  a->kpos_len = p->has_kpos ? p->kpos.length : 0;
  a->qfirst_len = p->has_qfirst ? p->qfirst.length : 0;
  return true;
}

bool tensor(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, size_t want, const char* formula, bool either, ArrayArg* out) {
  return expect_array(info, fn, index, name, either ? std::initializer_list<napi_typedarray_type>{napi_float32_array, napi_float64_array} : std::initializer_list<napi_typedarray_type>{napi_float32_array}, out) &&
         expect_length(info.Env(), fn, name, *out, want, formula);
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* fn = "attention";
  Napi::Env env = info.Env();
  element::AttnShape a{};
  ArrayArg q, k, v, out, lse;
  Positions pos;
  if (!expect_arity(info, fn, 17) || !parse_shape(info, fn, 5, &a, &pos)) return env.Undefined();
  const bool has_lse = !(info[4].IsNull() || info[4].IsUndefined());
  const size_t rows = a.b * a.hq * a.sq;
  if (!tensor(info, fn, 0, "q", a.b * a.sq * a.hq * a.d, "b * sq * hq * d", false, &q) || !tensor(info, fn, 1, "k", a.b * a.sk * a.hkv * a.d, "b * sk * hkv * d", false, &k) ||
      !tensor(info, fn, 2, "v", a.b * a.sk * a.hkv * a.dv, "b * sk * hkv * dv", false, &v) ||
      !tensor(info, fn, 3, "out", rows * a.dv, "b * sq * hq * dv", false, &out) || (has_lse && !tensor(info, fn, 4, "lse", rows, "b * hq * sq", true, &lse))) {
    return env.Undefined();
  }
  const bool lse64 = has_lse && lse.type == napi_float64_array;
  const ArrayArg scratch{napi_float64_array, rows, nullptr, Napi::Value()};
  return run_on_device(info, fn,
                       {{&q, Way::in}, {&k, Way::in}, {&v, Way::in}, {&out, Way::out}, {has_lse ? &lse : nullptr, Way::out}, {pos.has_qpos ? &pos.qpos : nullptr, Way::in},
                        {pos.has_kpos ? &pos.kpos : nullptr, Way::in}, {pos.has_qfirst ? &pos.qfirst : nullptr, Way::in}, {&scratch, Way::scratch}, {&scratch, Way::scratch}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         element::AttnShape on = a;
                         on.qpos = d.i32(5);
                         on.kpos = d.i32(6);
                         on.qfirst = d.i32(7);
                         return attention_forward_launch(on, d.f32(0), d.f32(1), d.f32(2), d.f32(3), has_lse && !lse64 ? d.f32(4) : nullptr,
                                                         lse64 ? d.f64(4) : nullptr, d.f64(8), d.f64(9), s);
                       });
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionBackward";
  Napi::Env env = info.Env();
  element::AttnShape a{};
  ArrayArg q, k, v, out, dout, lse, dq, dk, dv;
  Positions pos;
  if (!expect_arity(info, fn, 21) || !parse_shape(info, fn, 9, &a, &pos)) return env.Undefined();
  const size_t nq = a.b * a.sq * a.hq * a.d, nk = a.b * a.sk * a.hkv * a.d, nv = a.b * a.sk * a.hkv * a.dv, rows = a.b * a.hq * a.sq;
  if (!tensor(info, fn, 0, "q", nq, "b * sq * hq * d", false, &q) || !tensor(info, fn, 1, "k", nk, "b * sk * hkv * d", false, &k) ||
      !tensor(info, fn, 2, "v", nv, "b * sk * hkv * dv", false, &v) || !tensor(info, fn, 3, "out", rows * a.dv, "b * sq * hq * dv", false, &out) ||
      !tensor(info, fn, 4, "gradOut", rows * a.dv, "b * sq * hq * dv", false, &dout) || !tensor(info, fn, 5, "lse", rows, "b * hq * sq", true, &lse) ||
      !tensor(info, fn, 6, "gradQ", nq, "b * sq * hq * d", false, &dq) || !tensor(info, fn, 7, "gradK", nk, "b * sk * hkv * d", false, &dk) ||
      !tensor(info, fn, 8, "gradV", nv, "b * sk * hkv * dv", false, &dv)) {
    return env.Undefined();
  }
  const bool lse64 = lse.type == napi_float64_array;
  const ArrayArg scratch{napi_float64_array, rows, nullptr, Napi::Value()};
  return run_on_device(info, fn,
                       {{&q, Way::in}, {&k, Way::in}, {&v, Way::in}, {&out, Way::in}, {&dout, Way::in}, {&lse, Way::in}, {&dq, Way::out}, {&dk, Way::out},
                        {&dv, Way::out}, {pos.has_qpos ? &pos.qpos : nullptr, Way::in}, {pos.has_kpos ? &pos.kpos : nullptr, Way::in},
                        {pos.has_qfirst ? &pos.qfirst : nullptr, Way::in}, {&scratch, Way::scratch}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         element::AttnShape on = a;
                         on.qpos = d.i32(9);
                         on.kpos = d.i32(10);
                         on.qfirst = d.i32(11);
                         return attention_backward_launch(on, d.f32(0), d.f32(1), d.f32(2), d.f32(3), d.f32(4), lse64 ? nullptr : d.f32(5),
                                                          lse64 ? d.f64(5) : nullptr, d.f64(12), d.f32(6), d.f32(7), d.f32(8), s);
                       });
}

}  // namespace

void RegisterAttentionCudaExports(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, AttentionForward, "attention"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
}

}  // namespace pleat
