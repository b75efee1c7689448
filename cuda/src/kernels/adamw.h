// adamw: the AdamW update of a run of elements, the same arithmetic as src/train/Optimizer.ts's
// TypeScript loop, in float64 with the same operations in the same order (and no contraction:
// CMake builds with -ffp-contract=off), so both give the same bits:
//
//   gi = g[k] * clip
//   m[k] = b1 * m[k] + (1 - b1) * gi                  (stored as float32)
//   v[k] = b2 * v[k] + (1 - b2) * gi * gi             (stored as float32)
//   w[k] = w[k] - lr * (m / c1 / (sqrt(v / c2) + eps) + decay * w[k])
//
// where w's update uses m and v before their rounding to float32 (as the TypeScript loop, whose
// assignment expression gives the double it stored), c1 = 1 - b1^t, c2 = 1 - b2^t given by the
// caller. Weights and gradients are float32 or float64 (both the same); moments
// float32. Elementwise, so a split over threads changes nothing.
#pragma once

#include <cstddef>

namespace pleat {

struct AdamwScalars {
  double beta1, beta2, c1, c2, eps, lr, clip, decay;
};

// n elements; w and g of the parameter dtype, m and v float32.
void adamw_f32(const AdamwScalars& s, size_t n, float* w, const float* g, float* m, float* v);
void adamw_f64(const AdamwScalars& s, size_t n, double* w, const double* g, float* m, float* v);

}  // namespace pleat
