// One MoE layer's forward and backward on the GPU, every tensor resident there, timed with CUDA
// events: scripts/device-check's side of issue 15's "one MoE layer (T 8192, H 4096, F 14336,
// E 8, top-2) forward and backward at least as fast as PyTorch eager" (bench/pytorch/
// moe_layer_gpu.py is PyTorch's side: the same layer, defined there in the same words).
//
//   timeMoeLayer(tokens, hidden, ffn, experts, topk, reps) -> { forwardMs: [...], backwardMs:
//       [...], rows, perExpert: [...] }     (cublasLoad first; reps steps after one untimed)
//   runMoeLayer(x, wr, wg, wu, wd, dy, tokens, ...) -> the same layer once on given inputs, every
//       result copied back (for the check against a float64 reference, see below)
//
// The layer: logits = x Wr (float32 GEMM), the router kernel (softmax over the top-k logits: the
// top-k of the softmax renormalised, Mixtral's), the routing plan on the host (the indices
// copied back: what torch.where costs PyTorch too), the permute (rows in expert-major order,
// each with its prob), per expert gate = xe Wg[e] and up = xe Wu[e] (bf16 operands, fp32
// accumulation and output, cuBLAS), SwiGLU (float32), down = act Wd[e] (bf16), and the combine
// (each token's rows weighted by their probs and summed). Backward from a fixed dy: the combine's
// backward (row gradients and prob gradients), per expert the input and weight gradients of the
// three GEMMs (X W^T and X^T G, bf16 operands, fp32 results), SwiGLU's backward, and the
// unpermute of the input gradient. Not run: the router's backward (softmax's gradient and two
// GEMMs of T x H x E: under 0.01% of the step's FLOPs); the FLOP count of the report is the
// model's, the same formula as PyTorch's side.
//
// Weights are the same random bf16 values for every expert and matrix (one host array, copied
// once and rounded on the device): generating 1.4 G values on the host would take seconds, and
// the GEMMs' speed does not depend on the values.
#include <cuda_runtime.h>
#include <napi.h>

#include <string>
#include <vector>

#include "device/cublas_api.h"
#include "device_buffers.h"
#include "device_memory_binding.h"
#include "kernels/ops_cuda.h"
#include "moe_layer_timing.h"
#include "napi_args.h"
#include "routing_plan.h"

namespace pleat {

namespace {

struct Shape {
  size_t t, h, f, e, k;
};

// The device tensors of the layer (float32 unless named *16: bf16 as uint16).
struct Tensors {
  float *x, *wr, *dy, *logits, *probs, *xp, *probs_out, *gate, *up, *act, *yp, *out, *dyp, *dprob, *dact, *dgate, *dup, *dxp, *dx, *dwg, *dwu, *dwd;
  uint16_t *wg16, *wu16, *wd16, *xp16, *act16, *dyp16, *dgate16, *dup16;
  int32_t *chosen, *index, *expert, *offsets, *rows;
};

// The layer's inputs from the caller (runMoeLayer: float32, the expert weights [E, H, F] /
// [E, F, H] rounded to bf16 on the device); null: random (timeMoeLayer).
struct Inputs {
  const float *x = nullptr, *wr = nullptr, *wg = nullptr, *wu = nullptr, *wd = nullptr, *dy = nullptr;
};

// Device float32 of `count`: the caller's values, else uniform(scale) ones.
float* input(DeviceBuffers& b, TimingRandom& random, size_t count, const float* given, float scale) {
  if (given != nullptr) return b.make(count, given);
  std::vector<float> host(count);
  for (float& v : host) v = random.uniform(scale);
  return b.make(count, host.data());
}

bool make_tensors(DeviceBuffers& b, const Shape& s, const Inputs& in, Tensors* d) {
  const size_t n = s.t * s.k, hf = s.h * s.f;
  TimingRandom random;
  d->x = input(b, random, s.t * s.h, in.x, 1.0f);
  d->dy = input(b, random, s.t * s.h, in.dy, 1e-3f);
  d->wr = input(b, random, s.h * s.e, in.wr, 0.04f);
  // Random weights: one matrix's values for every expert and matrix (see the header).
  float* w32 = in.wg == nullptr ? input(b, random, hf, nullptr, 0.04f) : nullptr;
  float** f32[] = {&d->logits, &d->probs, &d->xp, &d->probs_out, &d->gate, &d->up, &d->act, &d->yp, &d->out, &d->dyp, &d->dprob,
                   &d->dact, &d->dgate, &d->dup, &d->dxp, &d->dx, &d->dwg, &d->dwu, &d->dwd};
  const size_t f32_sizes[] = {s.t * s.e, s.t * s.e, n * s.h, n, n * s.f, n * s.f, n * s.f, n * s.h, s.t * s.h, n * s.h, n,
                              n * s.f, n * s.f, n * s.f, n * s.h, s.t * s.h, s.e * hf, s.e * hf, s.e * hf};
  for (size_t i = 0; i < sizeof(f32_sizes) / sizeof(f32_sizes[0]); ++i)
    if ((*f32[i] = b.make<float>(f32_sizes[i])) == nullptr) return false;
  uint16_t** u16[] = {&d->wg16, &d->wu16, &d->wd16, &d->xp16, &d->act16, &d->dyp16, &d->dgate16, &d->dup16};
  const size_t u16_sizes[] = {s.e * hf, s.e * hf, s.e * hf, n * s.h, n * s.f, n * s.h, n * s.f, n * s.f};
  for (size_t i = 0; i < sizeof(u16_sizes) / sizeof(u16_sizes[0]); ++i)
    if ((*u16[i] = b.make<uint16_t>(u16_sizes[i])) == nullptr) return false;
  int32_t** i32[] = {&d->chosen, &d->index, &d->expert, &d->offsets, &d->rows};
  const size_t i32_sizes[] = {n, n, n, s.t + 1, n};
  for (size_t i = 0; i < 5; ++i)
    if ((*i32[i] = b.make<int32_t>(i32_sizes[i])) == nullptr) return false;
  if (d->x == nullptr || d->dy == nullptr || d->wr == nullptr) return false;
  if (in.wg != nullptr) {
    const float* given[] = {in.wg, in.wu, in.wd};
    uint16_t* w16[] = {d->wg16, d->wu16, d->wd16};
    for (size_t i = 0; i < 3; ++i) {
      const float* w = b.make(s.e * hf, given[i]);
      if (w == nullptr || to_bf16_launch(w, w16[i], s.e * hf, nullptr) != cudaSuccess) return false;
    }
  } else {
    if (w32 == nullptr) return false;
    for (size_t e = 0; e < s.e; ++e)
      for (uint16_t* w16 : {d->wg16, d->wu16, d->wd16})
        if (to_bf16_launch(w32, w16 + e * hf, hf, nullptr) != cudaSuccess) return false;
  }
  return cudaDeviceSynchronize() == cudaSuccess;
}

#define PLEAT_TRY(call)                         \
  do {                                          \
    if (cudaError_t e_ = (call); e_ != cudaSuccess) return e_; \
  } while (0)

cudaError_t cublas_status(int st) { return st == cublas::kSuccess ? cudaSuccess : cudaErrorUnknown; }

// One GEMM per expert over its rows: `a` rows start at row offset r0 (a_stride elements a row)
// and the expert's weight is w + e * w_stride; see gemm_row_major_ex for the transposes.
template <typename Each>
cudaError_t per_expert(const std::vector<int32_t>& counts, Each each) {
  size_t r0 = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    const int rows = counts[e];
    if (rows > 0) PLEAT_TRY(each(e, r0, rows));
    r0 += static_cast<size_t>(rows);
  }
  return cudaSuccess;
}

cudaError_t forward(CublasApi* api, cudaStream_t s, const Shape& sh, const Tensors& d, RoutingPlan* plan) {
  const size_t n = sh.t * sh.k, hf = sh.h * sh.f;
  const int H = static_cast<int>(sh.h), F = static_cast<int>(sh.f);
  PLEAT_TRY(cublas_status(gemm_row_major(api, s, false, d.x, d.wr, d.logits, static_cast<int>(sh.t), static_cast<int>(sh.e), H)));
  PLEAT_TRY(router_launch(d.logits, sh.t, static_cast<int>(sh.e), static_cast<int>(sh.k), 1, 0, 0, nullptr, 1.0, d.chosen, d.probs, s));
  std::vector<int32_t> chosen(n);
  PLEAT_TRY(cudaMemcpyAsync(chosen.data(), d.chosen, n * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
  PLEAT_TRY(cudaStreamSynchronize(s));
  *plan = routing_plan(chosen, sh.t, sh.k, sh.e);
  PLEAT_TRY(cudaMemcpyAsync(d.index, plan->index.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  PLEAT_TRY(cudaMemcpyAsync(d.expert, plan->expert.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  PLEAT_TRY(cudaMemcpyAsync(d.offsets, plan->offsets.data(), (sh.t + 1) * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  PLEAT_TRY(cudaMemcpyAsync(d.rows, plan->rows.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  PLEAT_TRY(permute_rows_launch(d.x, sh.h, d.index, n, d.xp, sh.h, d.probs, d.expert, sh.e, d.probs_out, s));
  PLEAT_TRY(to_bf16_launch(d.xp, d.xp16, n * sh.h, s));
  PLEAT_TRY(per_expert(plan->counts, [&](size_t e, size_t r0, int rows) {
    PLEAT_TRY(cublas_status(gemm_row_major(api, s, true, d.xp16 + r0 * sh.h, d.wg16 + e * hf, d.gate + r0 * sh.f, rows, F, H)));
    return cublas_status(gemm_row_major(api, s, true, d.xp16 + r0 * sh.h, d.wu16 + e * hf, d.up + r0 * sh.f, rows, F, H));
  }));
  PLEAT_TRY(swiglu_launch(d.gate, d.up, d.act, n * sh.f, s));
  PLEAT_TRY(to_bf16_launch(d.act, d.act16, n * sh.f, s));
  PLEAT_TRY(per_expert(plan->counts, [&](size_t e, size_t r0, int rows) {
    return cublas_status(gemm_row_major(api, s, true, d.act16 + r0 * sh.f, d.wd16 + e * hf, d.yp + r0 * sh.h, rows, H, F));
  }));
  return combine_rows_launch(d.yp, sh.h, d.offsets, d.rows, d.probs_out, sh.t, sh.h, d.out, s);
}

cudaError_t backward(CublasApi* api, cudaStream_t s, const Shape& sh, const Tensors& d, const RoutingPlan& plan) {
  const size_t n = sh.t * sh.k, hf = sh.h * sh.f;
  const int H = static_cast<int>(sh.h), F = static_cast<int>(sh.f);
  PLEAT_TRY(combine_backward_launch(d.dy, d.index, n, sh.h, d.probs_out, d.yp, d.dyp, d.dprob, s));
  PLEAT_TRY(to_bf16_launch(d.dyp, d.dyp16, n * sh.h, s));
  PLEAT_TRY(per_expert(plan.counts, [&](size_t e, size_t r0, int rows) {
    // dact = dy Wd^T; dWd = act^T dy.
    PLEAT_TRY(cublas_status(gemm_row_major_ex(api, s, true, false, true, d.dyp16 + r0 * sh.h, d.wd16 + e * hf, d.dact + r0 * sh.f, rows, F, H, 0.0f)));
    return cublas_status(gemm_row_major_ex(api, s, true, true, false, d.act16 + r0 * sh.f, d.dyp16 + r0 * sh.h, d.dwd + e * hf, F, H, rows, 0.0f));
  }));
  PLEAT_TRY(swiglu_backward_launch(d.gate, d.up, d.dact, d.dgate, d.dup, n * sh.f, s));
  PLEAT_TRY(to_bf16_launch(d.dgate, d.dgate16, n * sh.f, s));
  PLEAT_TRY(to_bf16_launch(d.dup, d.dup16, n * sh.f, s));
  PLEAT_TRY(per_expert(plan.counts, [&](size_t e, size_t r0, int rows) {
    // dxp = dgate Wg^T + dup Wu^T; dWg = xp^T dgate; dWu = xp^T dup.
    PLEAT_TRY(cublas_status(gemm_row_major_ex(api, s, true, false, true, d.dgate16 + r0 * sh.f, d.wg16 + e * hf, d.dxp + r0 * sh.h, rows, H, F, 0.0f)));
    PLEAT_TRY(cublas_status(gemm_row_major_ex(api, s, true, false, true, d.dup16 + r0 * sh.f, d.wu16 + e * hf, d.dxp + r0 * sh.h, rows, H, F, 1.0f)));
    PLEAT_TRY(cublas_status(gemm_row_major_ex(api, s, true, true, false, d.xp16 + r0 * sh.h, d.dgate16 + r0 * sh.f, d.dwg + e * hf, H, F, rows, 0.0f)));
    return cublas_status(gemm_row_major_ex(api, s, true, true, false, d.xp16 + r0 * sh.h, d.dup16 + r0 * sh.f, d.dwu + e * hf, H, F, rows, 0.0f));
  }));
  // The input gradient: each token's rows summed back, unweighted (the permute's adjoint).
  return combine_rows_launch(d.dxp, sh.h, d.offsets, d.rows, nullptr, sh.t, sh.h, d.dx, s);
}

// The shape from arguments first..first+4 (tokens, hidden, ffn, experts, topk), checked.
bool shape_of(const Napi::CallbackInfo& info, const char* fn, size_t first, Shape* sh) {
  double v[5] = {};
  const char* names[] = {"tokens", "hidden", "ffn", "experts", "topk"};
  for (size_t i = 0; i < 5; ++i)
    if (!expect_whole(info, fn, first + i, names[i], &v[i])) return false;
  *sh = Shape{static_cast<size_t>(v[0]), static_cast<size_t>(v[1]), static_cast<size_t>(v[2]), static_cast<size_t>(v[3]), static_cast<size_t>(v[4])};
  if (sh->t == 0 || sh->h == 0 || sh->f == 0 || sh->k == 0 || sh->k > sh->e || sh->e > 64 || static_cast<double>(sh->t * sh->k) > 2147483647.0 / static_cast<double>(sh->f))
    return throw_range_error(info.Env(), std::string(fn) + ": needs tokens, hidden, ffn >= 1, 1 <= topk <= experts <= 64, tokens * topk * ffn < 2^31");
  return true;
}

// The device memory and cuBLAS, or null with a pending JS error.
CublasApi* ready(Napi::Env env, const char* fn, DeviceMemory** m) {
  *m = device_memory(env);
  if (*m == nullptr) return nullptr;
  CublasApi* api = loaded_cublas();
  if (api == nullptr) Napi::Error::New(env, std::string(fn) + ": cuBLAS is not loaded (call cublasLoad(path) first)").ThrowAsJavaScriptException();
  return api;
}

bool cuda_failed(Napi::Env env, const char* fn, cudaError_t err) {
  if (err == cudaSuccess) return false;
  (void)cudaGetLastError();
  Napi::Error::New(env, std::string("CUDA error: ") + fn + " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) + " (cuBLAS status errors read as cudaErrorUnknown)")
      .ThrowAsJavaScriptException();
  return true;
}

// runMoeLayer(x, wr, wg, wu, wd, dy, tokens, hidden, ffn, experts, topk) -> { out, dx, dwg, dwu,
//   dwd, chosen, probs }: one forward and backward of the timed layer on the caller's float32
// inputs (x, dy [T, H], wr [H, E], wg, wu [E, H, F], wd [E, F, H]; the expert weights are rounded
// to bf16 on the device), every result copied back (chosen [T, k], probs [T, E] dense), so that
// scripts/device-check can hold the timed layer against a float64 reference on small shapes.
Napi::Value RunMoeLayer(const Napi::CallbackInfo& info) {
  const char* fn = "runMoeLayer";
  Napi::Env env = info.Env();
  Shape sh{};
  if (!expect_arity(info, fn, 11) || !shape_of(info, fn, 6, &sh)) return env.Undefined();
  const size_t hf = sh.h * sh.f;
  const size_t lengths[] = {sh.t * sh.h, sh.h * sh.e, sh.e * hf, sh.e * hf, sh.e * hf, sh.t * sh.h};
  const char* names[] = {"x", "wr", "wg", "wu", "wd", "dy"};
  const float* host[6] = {};
  for (size_t i = 0; i < 6; ++i) {
    Napi::TypedArray a;
    if (!expect_typed_array(info, fn, i, names[i], &a)) return env.Undefined();
    if (a.TypedArrayType() != napi_float32_array || a.ElementLength() != lengths[i]) {
      throw_range_error(env, std::string(fn) + ": " + names[i] + " must be a Float32Array of " + std::to_string(lengths[i]) + " elements");
      return env.Undefined();
    }
    host[i] = reinterpret_cast<const float*>(view_bytes(a));
  }
  DeviceMemory* m = nullptr;
  CublasApi* api = ready(env, fn, &m);
  if (api == nullptr) return env.Undefined();
  DeviceBuffers b(m);
  Tensors d{};
  if (!make_tensors(b, sh, Inputs{host[0], host[1], host[2], host[3], host[4], host[5]}, &d)) {
    (void)cudaGetLastError();
    Napi::Error::New(env, std::string(fn) + ": the device is out of memory for the layer's tensors (or a copy failed)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  cudaStream_t s = m->backend.stream(0);
  RoutingPlan plan;
  cudaError_t err = forward(api, s, sh, d, &plan);
  if (err == cudaSuccess) err = backward(api, s, sh, d, plan);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  if (cuda_failed(env, fn, err)) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  const auto back = [&](const char* name, const void* src, size_t count, bool ints) {
    Napi::TypedArray a = ints ? static_cast<Napi::TypedArray>(Napi::Int32Array::New(env, count)) : static_cast<Napi::TypedArray>(Napi::Float32Array::New(env, count));
    if (err == cudaSuccess && count > 0) err = cudaMemcpy(view_bytes(a), src, count * 4, cudaMemcpyDeviceToHost);
    out.Set(name, a);
  };
  back("out", d.out, sh.t * sh.h, false);
  back("dx", d.dx, sh.t * sh.h, false);
  back("dwg", d.dwg, sh.e * hf, false);
  back("dwu", d.dwu, sh.e * hf, false);
  back("dwd", d.dwd, sh.e * hf, false);
  back("chosen", d.chosen, sh.t * sh.k, true);
  back("probs", d.probs, sh.t * sh.e, false);
  if (cuda_failed(env, fn, err)) return env.Undefined();
  return out;
}

Napi::Value TimeMoeLayer(const Napi::CallbackInfo& info) {
  const char* fn = "timeMoeLayer";
  Napi::Env env = info.Env();
  Shape sh{};
  double reps = 0;
  if (!expect_arity(info, fn, 6) || !shape_of(info, fn, 0, &sh) || !expect_whole(info, fn, 5, "reps", &reps)) return env.Undefined();
  if (reps < 1) {
    throw_range_error(env, std::string(fn) + ": needs reps >= 1");
    return env.Undefined();
  }
  DeviceMemory* m = nullptr;
  CublasApi* api = ready(env, fn, &m);
  if (api == nullptr) return env.Undefined();
  DeviceBuffers b(m);
  Tensors d{};
  if (!make_tensors(b, sh, Inputs{}, &d)) {
    (void)cudaGetLastError();
    Napi::Error::New(env, std::string(fn) + ": the device is out of memory for the layer's tensors (or a copy failed)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  cudaStream_t s = m->backend.stream(0);
  cudaEvent_t marks[3];
  for (cudaEvent_t& e : marks) cudaEventCreate(&e);
  Napi::Array forward_ms = Napi::Array::New(env), backward_ms = Napi::Array::New(env);
  RoutingPlan plan;
  cudaError_t err = cudaSuccess;
  for (int rep = 0; rep <= static_cast<int>(reps) && err == cudaSuccess; ++rep) {  // rep 0 untimed
    cudaEventRecord(marks[0], s);
    err = forward(api, s, sh, d, &plan);
    cudaEventRecord(marks[1], s);
    if (err == cudaSuccess) err = backward(api, s, sh, d, plan);
    cudaEventRecord(marks[2], s);
    if (err == cudaSuccess) err = cudaEventSynchronize(marks[2]);
    float f = 0, bw = 0;
    if (err == cudaSuccess) err = cudaEventElapsedTime(&f, marks[0], marks[1]);
    if (err == cudaSuccess) err = cudaEventElapsedTime(&bw, marks[1], marks[2]);
    if (rep > 0) {
      forward_ms.Set(forward_ms.Length(), f);
      backward_ms.Set(backward_ms.Length(), bw);
    }
  }
  for (cudaEvent_t& e : marks) cudaEventDestroy(e);
  if (cuda_failed(env, fn, err)) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("forwardMs", forward_ms);
  out.Set("backwardMs", backward_ms);
  out.Set("rows", static_cast<double>(sh.t * sh.k));
  Napi::Array per = Napi::Array::New(env, plan.counts.size());
  for (size_t e = 0; e < plan.counts.size(); ++e) per.Set(static_cast<uint32_t>(e), plan.counts[e]);
  out.Set("perExpert", per);
  return out;
}

}  // namespace

void RegisterMoeLayerTimingExports(Napi::Env env, Napi::Object exports) {
  exports.Set("timeMoeLayer", Napi::Function::New(env, TimeMoeLayer, "timeMoeLayer"));
  exports.Set("runMoeLayer", Napi::Function::New(env, RunMoeLayer, "runMoeLayer"));
}

}  // namespace pleat
