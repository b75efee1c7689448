// The per-element (per-row, per-head) work of the CUDA kernels in gated_sinks.cu, as functions
// that compile for the device (nvcc) and for the host (any C++17 compiler), in ops_element.h's
// style: the kernels call them for their indices and pleat_kernel_emulation
// (gated_sinks_emulation.cc) for every index on the host, so their arithmetic and indexing are
// checked against the CPU and TypeScript twins without a GPU (properties/native/
// gatedSinksTwins.ts). Each float64 operation is rounded on its own (ops_element.h's add, sub,
// mul, div); exp and log are the device's or the host's std::exp / std::log (their last bit may
// differ).
//
//   gated_activation_element            gated_activation.h gated_activation_ref at i: the gated
//                                       MLP activation with Megatron-Core's options (alpha, offset,
//                                       limit clamped or not), float64 rounded once to float32
//   gated_activation_backward_element   gated_activation_backward_ref at i (dgate or dup null:
//                                       not wanted)
//   sinks_fold_row                      tensor/kernels/AttentionSinks.ts fold for one row of lse
//                                       [b, hq, sq] and its out row [dv] of out [b, sq, hq, dv]
//   sinks_gradient_row                  a row's term exp(z[h] - lse[row]) * delta of the sinks'
//                                       gradient (AttentionSinks.ts gradient; 0 where delta is 0)
//   sinks_gradient_head                 dz[h] = 0 - the head's terms in (bi, i) order, rounded
//                                       to float32 at the end
#pragma once

#include <cstddef>

#include "glu_options.h"
#include "ops_element.h"

namespace pleat {
namespace element {

// sigmoid(z) as the TypeScript op and the CPU kernel compute it: 1 / (1 + e^-z) for z >= 0,
// e^z / (1 + e^z) below (NaN: the second branch, NaN).
PLEAT_HD inline double glu_sigmoid(double z) {
  if (z >= 0.0) return div(1.0, add(1.0, exp_of(-z)));
  const double e = exp_of(z);
  return div(e, add(1.0, e));
}

// The clamps with NaN kept (a comparison with NaN is false): gate from above, up on both sides.
PLEAT_HD inline double glu_gate_of(double x, const GluOptions& o) { return o.clamped && x > o.limit ? o.limit : x; }
PLEAT_HD inline double glu_up_of(double y, const GluOptions& o) {
  if (!o.clamped) return y;
  const double low = y < -o.limit ? -o.limit : y;
  return low > o.limit ? o.limit : low;
}

// out[i] = float(g' * sigmoid(alpha g') * (u' + offset)), in gated_activation_ref's order.
PLEAT_HD inline void gated_activation_element(const float* gate, const float* up, float* out, const GluOptions& o, size_t i) {
  const double g = glu_gate_of(static_cast<double>(gate[i]), o);
  const double u = glu_up_of(static_cast<double>(up[i]), o);
  out[i] = static_cast<float>(mul(mul(g, glu_sigmoid(mul(o.alpha, g))), add(u, o.offset)));
}

// gated_activation_backward_ref at i, s = sigmoid(alpha g'):
//   dgate = grad * (u' + offset) * s * (1 + alpha g' (1 - s))   (0 where clamped and not gate <= limit)
//   dup   = grad * g' * s                                        (0 where clamped and not |up| <= limit)
PLEAT_HD inline void gated_activation_backward_element(const float* gate, const float* up, const float* grad, float* dgate, float* dup, const GluOptions& o,
                                                       size_t i) {
  const double x = gate[i];
  const double y = up[i];
  const double g = glu_gate_of(x, o);
  const double u = glu_up_of(y, o);
  const double s = glu_sigmoid(mul(o.alpha, g));
  const double d = grad[i];
  if (dgate != nullptr) {
    const double tail = add(1.0, mul(mul(o.alpha, g), sub(1.0, s)));
    dgate[i] = !o.clamped || x <= o.limit ? static_cast<float>(mul(mul(mul(d, add(u, o.offset)), s), tail)) : 0.0f;
  }
  if (dup != nullptr) dup[i] = !o.clamped || (y >= -o.limit && y <= o.limit) ? static_cast<float>(mul(mul(d, g), s)) : 0.0f;
}

// AttentionSinks.ts fold for row = (bi * hq + h) * sq + i of lse [b, hq, sq]: a row with no
// visible key (lse -inf) takes the sink's logit and keeps its out row (zero); otherwise
// lse = top + log(exp(m - top) + exp(z - top)) with top = max(m, z), and out's row
// ((bi * sq + i) * hq + h) * dv .. + dv is multiplied by exp(m - lse) in float64 and rounded.
PLEAT_HD inline void sinks_fold_row(float* out, double* lse, const float* sinks, size_t sq, size_t hq, size_t dv, size_t row) {
  const size_t i = row % sq, t = row / sq;
  const size_t h = t % hq, bi = t / hq;
  const double m = lse[row];
  const double sink = sinks[h];
  if (m == kMinusInfinity) {
    lse[row] = sink;
    return;
  }
  const double top = js_max(m, sink);
  const double total = add(top, log_of(add(exp_of(sub(m, top)), exp_of(sub(sink, top)))));
  lse[row] = total;
  const double keep = exp_of(sub(m, total));
  float* o = out + ((bi * sq + i) * hq + h) * dv;
  for (size_t e = 0; e < dv; ++e) o[e] = static_cast<float>(mul(static_cast<double>(o[e]), keep));
}

// Row `row`'s term of the sinks' gradient, from the output's gradient g, the folded out and lse:
// exp(z[h] - lse[row]) * delta with delta = the float64 sum over e ascending of g * out along the
// row's out row; 0 where delta is 0 (the TypeScript loop skips the row; subtracting +0 from a sum
// that starts at +0 changes nothing).
PLEAT_HD inline double sinks_gradient_row(const float* g, const float* out, const double* lse, const float* sinks, size_t sq, size_t hq, size_t dv,
                                          size_t row) {
  const size_t i = row % sq, t = row / sq;
  const size_t h = t % hq, bi = t / hq;
  const size_t o = ((bi * sq + i) * hq + h) * dv;
  double delta = 0.0;
  for (size_t e = 0; e < dv; ++e) delta = add(delta, mul(static_cast<double>(g[o + e]), static_cast<double>(out[o + e])));
  if (delta == 0.0) return 0.0;
  return mul(exp_of(sub(static_cast<double>(sinks[h]), lse[row])), delta);
}

// dz[h] = 0 - the terms of head h's rows (sinks_gradient_row, `terms` [b, hq, sq]) in bi then i
// ascending order, each subtraction rounded, then rounded to float32 (the sinks' dtype).
PLEAT_HD inline void sinks_gradient_head(const double* terms, size_t b, size_t sq, size_t hq, float* dz, size_t h) {
  double acc = 0.0;
  for (size_t bi = 0; bi < b; ++bi) {
    const double* r = terms + (bi * hq + h) * sq;
    for (size_t i = 0; i < sq; ++i) acc = sub(acc, r[i]);
  }
  dz[h] = static_cast<float>(acc);
}

}  // namespace element
}  // namespace pleat
