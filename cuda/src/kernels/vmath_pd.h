// Float64 vector helpers of the kernels that compute float32 data in float64 and round once
// (swiglu_backward.cc, gated_activation.cc): exp on (-inf, 0] in float64, and floats loaded
// widened to float64 or stored rounded once through a lane mask: eight at a time with AVX-512F
// alone, four with AVX2 + FMA. Both ISAs take the same float64 operations in the same order, so
// their results are equal bit for bit (properties/native/Rows.prop.ts pins each path).
#pragma once

#include <immintrin.h>

// GCC 12's false -Wuninitialized on its own AVX-512 intrinsics (see vmath.h).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pleat {
namespace vmath_pd {

// The constants of both ISAs' exp_nonpos: 1 / ln 2, ln 2 in two parts, and the Taylor
// coefficients from 1/0! to 1/13! (each the correctly rounded reciprocal), Horner from the last.
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2Hi = 0.693147180369123816490;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kC[14] = {1.0,        1.0,         1.0 / 2,      1.0 / 6,       1.0 / 24,        1.0 / 120,         1.0 / 720,
                           1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800};

// exp(x) for x <= 0 in float64: n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, so
// n * kLn2Hi is exact for |n| < 2^11), exp(r) on |r| <= ln 2 / 2 by Taylor to r^13 (the next term
// is below 1e-17 relative), times 2^n by vscalefpd (gradual underflow to 0 below -745). NaN
// propagates.
__attribute__((target("avx512f"))) inline __m512d exp_nonpos(__m512d x) {
  // vmaxpd returns its second operand when either is NaN: x second keeps NaN.
  x = _mm512_max_pd(_mm512_set1_pd(-746.0), x);
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_sub_pd(x, _mm512_mul_pd(n, _mm512_set1_pd(kLn2Hi)));
  r = _mm512_sub_pd(r, _mm512_mul_pd(n, _mm512_set1_pd(kLn2Lo)));
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

// ---- AVX2 + FMA --------------------------------------------------------------------------------

// 2^k as a float64 for integer k in [-1022, 1023] (the exponent field written directly).
__attribute__((target("avx2"))) inline __m256d pow2(__m128i k) {
  return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm_add_epi32(k, _mm_set1_epi32(1023))), 52));
}

// exp_nonpos above on four lanes: the same reduction and polynomial, then 2^n applied as two
// factors 2^(n >> 1) and 2^(n - (n >> 1)), each a normal number for n >= -1076: the first product
// is exact, the second rounds once, gradually underflowing as vscalefpd does, so the lanes equal
// the AVX-512 path's bit for bit. A NaN lane stays NaN (its polynomial is NaN).
__attribute__((target("avx2,fma"))) inline __m256d exp_nonpos(__m256d x) {
  x = _mm256_max_pd(_mm256_set1_pd(-746.0), x);
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_sub_pd(x, _mm256_mul_pd(n, _mm256_set1_pd(kLn2Hi)));
  r = _mm256_sub_pd(r, _mm256_mul_pd(n, _mm256_set1_pd(kLn2Lo)));
  __m256d p = _mm256_set1_pd(kC[13]);
  for (int i = 12; i >= 0; --i) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kC[i]));
  const __m128i k = _mm256_cvtpd_epi32(n);
  const __m128i half = _mm_srai_epi32(k, 1);
  return _mm256_mul_pd(_mm256_mul_pd(p, pow2(half)), pow2(_mm_sub_epi32(k, half)));
}

// Lanes [0, left) of four set (all bits of a 32-bit lane), left clamped to [0, 4].
__attribute__((target("avx2"))) inline __m128i mask4(size_t left) {
  const int l = left > 4 ? 4 : static_cast<int>(left);
  return _mm_cmpgt_epi32(_mm_set1_epi32(l), _mm_setr_epi32(0, 1, 2, 3));
}

// Four floats widened to float64: whole (m null: a plain load) or through a mask (the tail; AMD
// cores run vmaskmov slowly, so only the last block of a run takes it).
__attribute__((target("avx2"))) inline __m256d load(const __m128i* m, const float* p) {
  return _mm256_cvtps_pd(m == nullptr ? _mm_loadu_ps(p) : _mm_maskload_ps(p, *m));
}

// Four float64 values rounded once to float32 and stored, whole or through a mask.
__attribute__((target("avx2"))) inline void store(const __m128i* m, float* p, __m256d v) {
  if (m == nullptr) _mm_storeu_ps(p, _mm256_cvtpd_ps(v));
  else _mm_maskstore_ps(p, *m, _mm256_cvtpd_ps(v));
}

// |x| (the sign bit cleared).
__attribute__((target("avx2"))) inline __m256d abs(__m256d x) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), x); }

}  // namespace vmath_pd
}  // namespace pleat
