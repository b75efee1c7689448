// swiglu_backward (see rows.h): the gradients of out = gate * sigmoid(gate) * up, with
// s = sigmoid(gate) and g the output gradient:
//   dgate = g * up * s * (1 + gate * (1 - s))      dup = g * gate * s
// in float64, as the TypeScript reference computes it, each result rounded once to float32.
// Why not float32 with the forward's vector exponential: dgate cancels near gate = -1.28, and
// the extra few ulp of float32 arithmetic there pushed the parallel-equals-one-rank training
// property (properties/train/Float32.prop.ts) past its measured bounds after the first AdamW
// step. Rows split over the kernel pool, each element computed by one thread (results do not
// depend on the count).
//
// With AVX-512 eight elements go at once: the same float64 operations in the same order
// (-ffp-contract=off: no FMA), and exp(-|gate|) by a float64 vector exponential (Cody-Waite
// reduction, a degree-13 Taylor polynomial, vscalefpd): within a few float64 ulp of the
// library's exp, far below the one float32 rounding that follows, so the results equal the
// scalar path's except where that last bit decides a float32 rounding (at most one float32 ulp,
// the bound properties/native/Rows.prop.ts checks). The scalar path's std::exp took most of
// this kernel's time.
#include <immintrin.h>

#include <cmath>

#include "cpu_features.h"
#include "rows.h"
#include "thread_pool.h"

// GCC 12's false -Wuninitialized on its own AVX-512 intrinsics (see vmath.h).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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

namespace {

// exp(x) for x <= 0 in float64: n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, so
// n * kLn2Hi is exact for |n| < 2^11), exp(r) on |r| <= ln 2 / 2 by Taylor to r^13 (the next term
// is below 1e-17 relative), times 2^n by vscalefpd (gradual underflow to 0 below -745). NaN
// propagates.
__attribute__((target("avx512f"))) __m512d exp_nonpos_pd(__m512d x) {
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 0.693147180369123816490;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  // vmaxpd returns its second operand when either is NaN: x second keeps NaN.
  x = _mm512_max_pd(_mm512_set1_pd(-746.0), x);
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_sub_pd(x, _mm512_mul_pd(n, _mm512_set1_pd(kLn2Hi)));
  r = _mm512_sub_pd(r, _mm512_mul_pd(n, _mm512_set1_pd(kLn2Lo)));
  // Horner from 1/13! down to 1/0! (each coefficient the correctly rounded reciprocal).
  constexpr double kC[14] = {1.0,          1.0,           1.0 / 2,        1.0 / 6,         1.0 / 24,          1.0 / 120,           1.0 / 720,
                             1.0 / 5040,   1.0 / 40320,   1.0 / 362880,   1.0 / 3628800,   1.0 / 39916800,    1.0 / 479001600,     1.0 / 6227020800};
  __m512d p = _mm512_set1_pd(kC[13]);
  for (int i = 12; i >= 0; --i) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kC[i]));
  return _mm512_scalef_pd(p, n);
}

// Eight floats through a 16-lane masked load (AVX-512F alone), widened to float64.
__attribute__((target("avx512f"))) inline __m512d load(__mmask16 m, const float* p) {
  return _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, p)));
}

// Eight float64 values rounded once to float32 and stored through a 16-lane mask.
__attribute__((target("avx512f"))) inline void store(__mmask16 m, float* p, __m512d v) {
  _mm512_mask_storeu_ps(p, m, _mm512_castps256_ps512(_mm512_cvtpd_ps(v)));
}

__attribute__((target("avx512f"))) void swiglu_backward_avx512(const float* gate, const float* up, const float* grad, float* dgate, float* dup,
                                                               size_t n) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d zero = _mm512_setzero_pd();
  for (size_t i = 0; i < n; i += 8) {
    const __mmask16 m = n - i >= 8 ? static_cast<__mmask16>(0xff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512d x = load(m, gate + i);
    const __m512d e = exp_nonpos_pd(_mm512_sub_pd(zero, _mm512_abs_pd(x)));
    const __mmask8 pos = _mm512_cmp_pd_mask(x, zero, _CMP_GE_OQ);
    const __m512d s = _mm512_div_pd(_mm512_mask_blend_pd(pos, e, one), _mm512_add_pd(one, e));
    const __m512d g = load(m, grad + i);
    if (dgate != nullptr) {
      const __m512d u = load(m, up + i);
      const __m512d tail = _mm512_add_pd(one, _mm512_mul_pd(x, _mm512_sub_pd(one, s)));
      store(m, dgate + i, _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(g, u), s), tail));
    }
    if (dup != nullptr) store(m, dup + i, _mm512_mul_pd(_mm512_mul_pd(g, x), s));
  }
}

}  // namespace

void swiglu_backward(Isa isa, const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n) {
  pool_for(n, 5 * n * sizeof(float), [&](size_t i0, size_t i1) {
    float* dg = dgate == nullptr ? nullptr : dgate + i0;
    float* du = dup == nullptr ? nullptr : dup + i0;
    if (isa == Isa::Avx512) swiglu_backward_avx512(gate + i0, up + i0, grad + i0, dg, du, i1 - i0);
    else swiglu_backward_ref(gate + i0, up + i0, grad + i0, dg, du, i1 - i0);
  });
}

}  // namespace pleat
