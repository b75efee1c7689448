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
// this kernel's time. With AVX2 + FMA four go at once through the same operations (vmath_pd.h's
// four-lane exponential equals the eight-lane one bit for bit).
#include <immintrin.h>

#include <cmath>

#include "cpu_features.h"
#include "vmath_pd.h"
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

__attribute__((target("avx512f"))) void swiglu_backward_avx512(const float* gate, const float* up, const float* grad, float* dgate, float* dup,
                                                               size_t n) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d zero = _mm512_setzero_pd();
  for (size_t i = 0; i < n; i += 8) {
    const __mmask16 m = n - i >= 8 ? static_cast<__mmask16>(0xff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512d x = vmath_pd::load(m, gate + i);
    const __m512d e = vmath_pd::exp_nonpos(_mm512_sub_pd(zero, _mm512_abs_pd(x)));
    const __mmask8 pos = _mm512_cmp_pd_mask(x, zero, _CMP_GE_OQ);
    const __m512d s = _mm512_div_pd(_mm512_mask_blend_pd(pos, e, one), _mm512_add_pd(one, e));
    const __m512d g = vmath_pd::load(m, grad + i);
    if (dgate != nullptr) {
      const __m512d u = vmath_pd::load(m, up + i);
      const __m512d tail = _mm512_add_pd(one, _mm512_mul_pd(x, _mm512_sub_pd(one, s)));
      vmath_pd::store(m, dgate + i, _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(g, u), s), tail));
    }
    if (dup != nullptr) vmath_pd::store(m, dup + i, _mm512_mul_pd(_mm512_mul_pd(g, x), s));
  }
}

__attribute__((target("avx2,fma"))) void swiglu_backward_avx2(const float* gate, const float* up, const float* grad, float* dgate, float* dup,
                                                               size_t n) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d zero = _mm256_setzero_pd();
  for (size_t i = 0; i < n; i += 4) {
    const __m128i tail = vmath_pd::mask4(n - i);
    const __m128i* m = n - i >= 4 ? nullptr : &tail;
    const __m256d x = vmath_pd::load(m, gate + i);
    const __m256d e = vmath_pd::exp_nonpos(_mm256_sub_pd(zero, vmath_pd::abs(x)));
    const __m256d pos = _mm256_cmp_pd(x, zero, _CMP_GE_OQ);
    const __m256d s = _mm256_div_pd(_mm256_blendv_pd(e, one, pos), _mm256_add_pd(one, e));
    const __m256d g = vmath_pd::load(m, grad + i);
    if (dgate != nullptr) {
      const __m256d u = vmath_pd::load(m, up + i);
      const __m256d tail = _mm256_add_pd(one, _mm256_mul_pd(x, _mm256_sub_pd(one, s)));
      vmath_pd::store(m, dgate + i, _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(g, u), s), tail));
    }
    if (dup != nullptr) vmath_pd::store(m, dup + i, _mm256_mul_pd(_mm256_mul_pd(g, x), s));
  }
}

}  // namespace

void swiglu_backward(Isa isa, const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n) {
  pool_for(n, 5 * n * sizeof(float), [&](size_t i0, size_t i1) {
    float* dg = dgate == nullptr ? nullptr : dgate + i0;
    float* du = dup == nullptr ? nullptr : dup + i0;
    if (isa == Isa::Avx512) swiglu_backward_avx512(gate + i0, up + i0, grad + i0, dg, du, i1 - i0);
    else if (isa == Isa::Avx2) swiglu_backward_avx2(gate + i0, up + i0, grad + i0, dg, du, i1 - i0);
    else swiglu_backward_ref(gate + i0, up + i0, grad + i0, dg, du, i1 - i0);
  });
}

}  // namespace pleat
