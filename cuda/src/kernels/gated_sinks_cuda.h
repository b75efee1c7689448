// CUDA kernels of two ops that ran on the host only, each the device twin of its CPU / TypeScript
// reference and checked against it (properties/native/gatedSinksTwins.ts: on the host through
// pleat_kernel_emulation, on the GPU through CudaOps.prop.ts and scripts/device-check):
//   gated_activation           the gated MLP activation with Megatron-Core's options (GPT-OSS's
//                              clamped GLU; gated_activation.h gated_activation_ref: float64
//                              rounded once, within one float ulp on the device, its exp)
//   gated_activation_backward  its gradients (dgate or dup may be null: not wanted)
//   attention_sinks_fold       tensor/kernels/AttentionSinks.ts fold: the sink logits folded into
//                              a forward's out [b, sq, hq, dv] (float32) and lse [b, hq, sq]
//                              (float64) in place, one thread a row
//   attention_sinks_gradient   AttentionSinks.ts gradient: dz [hq] (float32) from g, the folded out
//                              and lse; each row's term in parallel into `terms` (device scratch of
//                              b * hq * sq doubles), then one thread a head sums its terms in the
//                              TypeScript loop's order (bi, then i), so the sum's bits are the CPU's
// Per-element functions in gated_sinks_element.h. Device pointers; launched on `stream`; return
// the launch status.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "gated_sinks_element.h"

namespace pleat {

cudaError_t gated_activation_launch(const float* gate, const float* up, float* out, size_t n, const GluOptions& o, cudaStream_t stream);
cudaError_t gated_activation_backward_launch(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                             const GluOptions& o, cudaStream_t stream);
cudaError_t attention_sinks_fold_launch(float* out, double* lse, const float* sinks, size_t b, size_t sq, size_t hq, size_t dv, cudaStream_t stream);
cudaError_t attention_sinks_gradient_launch(const float* g, const float* out, const double* lse, const float* sinks, size_t b, size_t sq, size_t hq,
                                            size_t dv, double* terms, float* dz, cudaStream_t stream);

}  // namespace pleat
