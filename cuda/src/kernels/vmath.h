// Vector math shared by the row kernels and attention: exp on (-inf, 0], horizontal reductions,
// tail masks. Every function is marked with its target so it inlines into kernels of that ISA.
//
// exp_nonpos: every exp these kernels take is of a max-subtracted value (softmax, attention) or
// of -|x| (sigmoid), so only x <= 0 is needed and nothing can overflow. Method: n = round(x /
// ln 2), r = x - n ln 2 in two steps (Cody-Waite; |r| <= ln 2 / 2), exp(r) by a degree-7 Taylor
// polynomial (truncation below 1e-8 relative), times 2^n. Max error about 2 ulp. Results below
// the smallest normal float (x < -87.34) are returned as 0: an absolute error under 1.2e-38.
// NaN propagates; -inf gives 0.
#pragma once

#include <immintrin.h>

#include <cstddef>

// GCC 12 warns that the _mm512_undefined_* placeholders inside its own AVX-512 intrinsics
// (extract, cvt, max, scalef, ...) are uninitialized (GCC bug 105593, fixed in 13). The
// warnings are false, so they are silenced in the files that include this header.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pleat {
namespace vmath {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;  // ln 2 split so that n * kLn2Hi is exact for |n| < 2^9
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kMinArg = -87.3365447f;  // ln(FLT_MIN)
constexpr float kC[8] = {1.0f, 1.0f, 0.5f, 1.0f / 6, 1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};

// ---- AVX-512 -----------------------------------------------------------------------------------

__attribute__((target("avx512f"))) inline __m512 exp_nonpos(__m512 x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kMinArg), _CMP_LT_OQ);
  // vmaxps returns its second operand when either is NaN: x second keeps NaN.
  x = _mm512_max_ps(_mm512_set1_ps(-88.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC[7]);
  for (int i = 6; i >= 0; --i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC[i]));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~tiny), _mm512_scalef_ps(p, n));
}

__attribute__((target("avx512f"))) inline float hsum(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(_mm256_add_ps(lo, hi)),
                        _mm256_extractf128_ps(_mm256_add_ps(lo, hi), 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx512f"))) inline float hmax(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 m8 = _mm256_max_ps(lo, hi);
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

__attribute__((target("avx512f"))) inline double hsum(__m512d v) {
  const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  s2 = _mm_add_sd(s2, _mm_unpackhi_pd(s2, s2));
  return _mm_cvtsd_f64(s2);
}

// Lanes [0, left) set, left clamped to [0, 16].
__attribute__((target("avx512f"))) inline __mmask16 mask16(ptrdiff_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF)
         : left <= 0 ? static_cast<__mmask16>(0)
                     : static_cast<__mmask16>((1u << left) - 1u);
}

// The 16 floats of v widened to double and added into acc (two halves of 8).
__attribute__((target("avx512f"))) inline __m512d add_widened(__m512d acc, __m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return _mm512_add_pd(_mm512_add_pd(acc, _mm512_cvtps_pd(lo)), _mm512_cvtps_pd(hi));
}

// ---- AVX2 + FMA --------------------------------------------------------------------------------

__attribute__((target("avx2,fma"))) inline __m256 exp_nonpos(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(kMinArg), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(-88.0f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC[7]);
  for (int i = 6; i >= 0; --i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[i]));
  // 2^n from the exponent bits; n >= -127 here, and n = -127 (giving 0) only where tiny.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx2"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2"))) inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

__attribute__((target("avx2"))) inline double hsum(__m256d v) {
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s2 = _mm_add_sd(s2, _mm_unpackhi_pd(s2, s2));
  return _mm_cvtsd_f64(s2);
}

// Lanes [0, left) set (all bits of a 32-bit lane), left clamped to [0, 8]; for maskload/store.
__attribute__((target("avx2"))) inline __m256i mask8(ptrdiff_t left) {
  const int l = left > 8 ? 8 : left < 0 ? 0 : static_cast<int>(left);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2"))) inline __m256d add_widened(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

}  // namespace vmath
}  // namespace pleat
