// The gated MLP activation with Megatron-Core's options (src/tensor/ops/GatedActivation.ts):
//   g' = min(gate, limit)   u' = clamp(up, -limit, limit)   out = g' * sigmoid(alpha g') * (u' + offset)
// and its gradients for the output gradient `grad`, with s = sigmoid(alpha g'):
//   dgate = grad * (u' + offset) * s * (1 + alpha g' (1 - s))   (0 where gate > limit)
//   dup   = grad * g' * s                                        (0 where |up| > limit)
// Without a clamp (`clamped` false) neither bound applies. Every element in float64, in the
// TypeScript op's order of operations, rounded once to float32; with AVX-512 eight at once by a
// float64 vector exponential (vmath_pd.h: within a few float64 ulp of std::exp, so the results
// equal the scalar path's except where that last bit decides a float32 rounding). Split over the
// kernel pool; results do not depend on the thread count. dgate or dup may be null (not wanted).
#pragma once

#include <cstddef>

#include "cpu_features.h"
#include "glu_options.h"

namespace pleat {

void gated_activation(Isa isa, const float* gate, const float* up, float* out, size_t n, const GluOptions& o);
void gated_activation_backward(Isa isa, const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                               const GluOptions& o);

// The scalar paths (tests compare the vector ones with them).
void gated_activation_ref(const float* gate, const float* up, float* out, size_t n, const GluOptions& o);
void gated_activation_backward_ref(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                   const GluOptions& o);

}  // namespace pleat
