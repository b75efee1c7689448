// Causal GQA attention forward and backward on the device, the twins of attention.h's float64
// references (the CPU's scalar path). Heads up to 256 wide (d and dv) run the flash-tiled kernels
// (attention_flash.h: float32 online softmax over key tiles in shared memory, a thread a row,
// deterministic, O(Sq + Sk) memory; within float32's rounding of the reference); wider heads the
// element kernels (attention_element.h: every output element from the definition in float64 in
// the reference's order, within one float ulp of it, slow: an element re-reads its row's keys).
//
//   forward   q [B, Sq, Hq, D], k [B, Sk, Hkv, D], v [B, Sk, Hkv, Dv] -> out [B, Sq, Hq, Dv] and,
//             when given, lse32 or lse64 [B, Hq, Sq]; row_lse and row_sum are device scratch of
//             B * Hq * Sq doubles (the element kernels')
//   backward  given out, dout and the forward's lse (lse32 or lse64): dq, dk, dv (overwritten);
//             delta is device scratch of B * Hq * Sq doubles
// The shape's position arrays are device pointers. Launched on `stream`; return the launch status.
#pragma once

#include <cuda_runtime.h>

#include "attention_element.h"

namespace pleat {

cudaError_t attention_forward_launch(const element::AttnShape& a, const float* q, const float* k, const float* v, float* out, float* lse32,
                                     double* lse64, double* row_lse, double* row_sum, cudaStream_t stream);
cudaError_t attention_backward_launch(const element::AttnShape& a, const float* q, const float* k, const float* v, const float* out,
                                      const float* dout, const float* lse32, const double* lse64, double* delta, float* dq, float* dk, float* dv,
                                      cudaStream_t stream);

}  // namespace pleat
