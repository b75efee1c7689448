// Float64 vector helpers of the kernels that compute float32 data in float64 and round once
// (swiglu_backward.cc, gated_activation.cc): exp on (-inf, 0] in float64, and eight floats
// loaded widened to float64 or stored rounded once, through a 16-lane mask (AVX-512F alone).
#pragma once

#include <immintrin.h>

// GCC 12's false -Wuninitialized on its own AVX-512 intrinsics (see vmath.h).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pleat {
namespace vmath_pd {

// exp(x) for x <= 0 in float64: n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, so
// n * kLn2Hi is exact for |n| < 2^11), exp(r) on |r| <= ln 2 / 2 by Taylor to r^13 (the next term
// is below 1e-17 relative), times 2^n by vscalefpd (gradual underflow to 0 below -745). NaN
// propagates.
__attribute__((target("avx512f"))) inline __m512d exp_nonpos(__m512d x) {
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

}  // namespace vmath_pd
}  // namespace pleat
