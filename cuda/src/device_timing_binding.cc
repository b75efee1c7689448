// Device-resident timings for scripts/device-check (issue 15's "permute plus unpermute at 60% or
// more of the measured copy bandwidth"): the kernels run on data that stays on the GPU, timed
// with CUDA events on one stream, against a device-to-device copy of the same bytes measured in
// the same call. (The kernels' bindings in cuda_ops_binding.cc copy host arrays in and out per
// call, so their wall time is the PCIe's, not the kernels'.)
//
//   timeDevicePermute(tokens, hidden, experts, topk, reps) -> { permuteMs, unpermuteMs, copyMs,
//       rows, bytes }
//     the MoE permute (permute_rows: N = tokens * topk rows of `hidden` floats gathered in
//     expert-major order) and unpermute (combine_rows: each token's rows weighted and summed),
//     and a cudaMemcpyAsync of N * hidden * 4 bytes; each the mean of `reps` calls after 3
//     untimed ones. Bytes are counted as the CPU bench counts them (bench/suites/moe.ts): a pass
//     reads and writes N * hidden * 4 bytes, and so does the copy. Token t picks experts
//     (t * 7 + j * (experts / topk)) mod experts, so every expert gets rows.
#include "device_timing_binding.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "device_buffers.h"
#include "device_memory_binding.h"
#include "kernels/ops_cuda.h"
#include "napi_args.h"
#include "routing_plan.h"

namespace pleat {

namespace {

Napi::Value TimeDevicePermute(const Napi::CallbackInfo& info) {
  const char* fn = "timeDevicePermute";
  Napi::Env env = info.Env();
  double tokens = 0, hidden = 0, experts = 0, topk = 0, reps = 0;
  if (!expect_arity(info, fn, 5) || !expect_whole(info, fn, 0, "tokens", &tokens) || !expect_whole(info, fn, 1, "hidden", &hidden) ||
      !expect_whole(info, fn, 2, "experts", &experts) || !expect_whole(info, fn, 3, "topk", &topk) || !expect_whole(info, fn, 4, "reps", &reps))
    return env.Undefined();
  const size_t t = static_cast<size_t>(tokens), h = static_cast<size_t>(hidden), e = static_cast<size_t>(experts), k = static_cast<size_t>(topk);
  if (t == 0 || h == 0 || k == 0 || k > e || reps < 1) {
    throw_range_error(env, std::string(fn) + ": needs tokens, hidden, reps >= 1 and 1 <= topk <= experts");
    return env.Undefined();
  }
  DeviceMemory* m = device_memory(env);
  if (m == nullptr) return env.Undefined();
  const size_t n = t * k;
  // Token i's j-th expert spread so that every expert gets rows.
  std::vector<int32_t> chosen(n);
  const size_t stride = std::max<size_t>(1, e / k);
  for (size_t i = 0; i < t; ++i)
    for (size_t j = 0; j < k; ++j) chosen[i * k + j] = static_cast<int32_t>((i * 7 + j * stride) % e);
  const RoutingPlan plan = routing_plan(chosen, t, k, e);
  const std::vector<int32_t>&index = plan.index, &token_offsets = plan.offsets, &token_rows = plan.rows;
  TimingRandom random;
  std::vector<float> x(t * h), weights(n);
  for (float& v : x) v = random.uniform(1.0f);
  for (float& w : weights) w = random.uniform(1.0f) + 0.5f;
  DeviceBuffers b(m);
  const float* dx = b.make(x.size(), x.data());
  const int32_t* d_index = b.make(index.size(), index.data());
  const int32_t* d_offsets = b.make(token_offsets.size(), token_offsets.data());
  const int32_t* d_rows = b.make(token_rows.size(), token_rows.data());
  const float* d_weights = b.make(weights.size(), weights.data());
  float* permuted = b.make<float>(n * h);
  float* copied = b.make<float>(n * h);
  float* combined = b.make<float>(t * h);
  if (dx == nullptr || d_index == nullptr || d_offsets == nullptr || d_rows == nullptr || d_weights == nullptr || permuted == nullptr || copied == nullptr ||
      combined == nullptr) {
    Napi::Error::New(env, std::string(fn) + ": the device is out of memory (or a copy failed)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  cudaStream_t s = m->backend.stream(0);
  const int r = static_cast<int>(reps);
  double permute_ms = 0, unpermute_ms = 0, copy_ms = 0;
  cudaError_t err = mean_ms(s, r, [&] { return permute_rows_launch(dx, h, d_index, n, permuted, h, nullptr, nullptr, e, nullptr, s); }, &permute_ms);
  if (err == cudaSuccess)
    err = mean_ms(s, r, [&] { return combine_rows_launch(permuted, h, d_offsets, d_rows, d_weights, t, h, combined, s); }, &unpermute_ms);
  if (err == cudaSuccess)
    err = mean_ms(s, r, [&] { return cudaMemcpyAsync(copied, permuted, n * h * sizeof(float), cudaMemcpyDeviceToDevice, s); }, &copy_ms);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    Napi::Error::New(env, std::string("CUDA error: ") + fn + " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("permuteMs", permute_ms);
  out.Set("unpermuteMs", unpermute_ms);
  out.Set("copyMs", copy_ms);
  out.Set("rows", static_cast<double>(n));
  out.Set("bytes", static_cast<double>(n * h * sizeof(float)));
  return out;
}

}  // namespace

void RegisterDeviceTimingExports(Napi::Env env, Napi::Object exports) {
  exports.Set("timeDevicePermute", Napi::Function::New(env, TimeDevicePermute, "timeDevicePermute"));
}

}  // namespace pleat
