// swiglu_backward (see rows.h): the gradients of out = gate * sigmoid(gate) * up, with
// s = sigmoid(gate) and g the output gradient:
//   dgate = g * up * s * (1 + gate * (1 - s))      dup = g * gate * s
// in float64, as the TypeScript reference computes it, each result rounded once to float32.
// Why not float32 with the forward's vector exponential: dgate cancels near gate = -1.28, and
// the extra few ulp of float32 arithmetic there pushed the parallel-equals-one-rank training
// property (properties/train/Float32.prop.ts) past its measured bounds after the first AdamW
// step. In float64 this is still several times faster than the TypeScript loop; rows split over
// the kernel pool, each element computed by one thread (results do not depend on the count).
#include <cmath>

#include "rows.h"
#include "thread_pool.h"

namespace pleat {

void swiglu_backward_ref(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double x = gate[i];
    const double e = std::exp(-std::fabs(x));
    const double s = (x >= 0.0 ? 1.0 : e) / (1.0 + e);
    const double g = grad[i];
    if (dgate != nullptr) dgate[i] = static_cast<float>(g * up[i] * s * (1.0 + x * (1.0 - s)));
    if (dup != nullptr) dup[i] = static_cast<float>(g * x * s);
  }
}

void swiglu_backward(Isa isa, const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n) {
  (void)isa;  // one float64 path on every ISA (see the header)
  pool_for(n, 5 * n * sizeof(float), [&](size_t i0, size_t i1) {
    swiglu_backward_ref(gate + i0, up + i0, grad + i0, dgate == nullptr ? nullptr : dgate + i0, dup == nullptr ? nullptr : dup + i0, i1 - i0);
  });
}

}  // namespace pleat
