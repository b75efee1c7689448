// gated_activation and its backward (see gated_activation.h).
#include "gated_activation.h"

#include <immintrin.h>

#include <cmath>

#include "thread_pool.h"
#include "vmath_pd.h"

namespace pleat {

namespace {

// sigmoid(z) as the TypeScript op computes it: 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below.
inline double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// The clamps with NaN kept (a comparison with NaN is false).
inline double gate_of(double x, const GluOptions& o) { return o.clamped && x > o.limit ? o.limit : x; }
inline double up_of(double y, const GluOptions& o) {
  if (!o.clamped) return y;
  const double low = y < -o.limit ? -o.limit : y;
  return low > o.limit ? o.limit : low;
}

// sigmoid(alpha g) for eight float64 values: e = exp(-|z|), 1 / (1 + e) or e / (1 + e).
__attribute__((target("avx512f"))) inline __m512d sigmoid8(__m512d z) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d zero = _mm512_setzero_pd();
  const __m512d e = vmath_pd::exp_nonpos(_mm512_sub_pd(zero, _mm512_abs_pd(z)));
  const __mmask8 pos = _mm512_cmp_pd_mask(z, zero, _CMP_GE_OQ);
  return _mm512_div_pd(_mm512_mask_blend_pd(pos, e, one), _mm512_add_pd(one, e));
}

// The clamps on eight values: gate above the limit becomes the limit, up outside [-limit, limit]
// its bound; a NaN lane compares false and stays NaN.
__attribute__((target("avx512f"))) inline __m512d clamp_gate8(__m512d x, const GluOptions& o) {
  if (!o.clamped) return x;
  const __mmask8 above = _mm512_cmp_pd_mask(x, _mm512_set1_pd(o.limit), _CMP_GT_OQ);
  return _mm512_mask_blend_pd(above, x, _mm512_set1_pd(o.limit));
}

__attribute__((target("avx512f"))) inline __m512d clamp_up8(__m512d y, const GluOptions& o) {
  if (!o.clamped) return y;
  const __mmask8 below = _mm512_cmp_pd_mask(y, _mm512_set1_pd(-o.limit), _CMP_LT_OQ);
  const __m512d low = _mm512_mask_blend_pd(below, y, _mm512_set1_pd(-o.limit));
  const __mmask8 above = _mm512_cmp_pd_mask(low, _mm512_set1_pd(o.limit), _CMP_GT_OQ);
  return _mm512_mask_blend_pd(above, low, _mm512_set1_pd(o.limit));
}

__attribute__((target("avx512f"))) void forward_avx512(const float* gate, const float* up, float* out, size_t n, const GluOptions& o) {
  const __m512d alpha = _mm512_set1_pd(o.alpha);
  const __m512d offset = _mm512_set1_pd(o.offset);
  for (size_t i = 0; i < n; i += 8) {
    const __mmask16 m = n - i >= 8 ? static_cast<__mmask16>(0xff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512d g = clamp_gate8(vmath_pd::load(m, gate + i), o);
    const __m512d u = clamp_up8(vmath_pd::load(m, up + i), o);
    const __m512d s = sigmoid8(_mm512_mul_pd(alpha, g));
    vmath_pd::store(m, out + i, _mm512_mul_pd(_mm512_mul_pd(g, s), _mm512_add_pd(u, offset)));
  }
}

__attribute__((target("avx512f"))) void backward_avx512(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                                        const GluOptions& o) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d zero = _mm512_setzero_pd();
  const __m512d alpha = _mm512_set1_pd(o.alpha);
  const __m512d offset = _mm512_set1_pd(o.offset);
  const __m512d limit = _mm512_set1_pd(o.limit);
  const __m512d low = _mm512_set1_pd(-o.limit);
  for (size_t i = 0; i < n; i += 8) {
    const __mmask16 m = n - i >= 8 ? static_cast<__mmask16>(0xff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512d x = vmath_pd::load(m, gate + i);
    const __m512d y = vmath_pd::load(m, up + i);
    const __m512d g = clamp_gate8(x, o);
    const __m512d u = clamp_up8(y, o);
    const __m512d s = sigmoid8(_mm512_mul_pd(alpha, g));
    const __m512d d = vmath_pd::load(m, grad + i);
    if (dgate != nullptr) {
      const __m512d tail = _mm512_add_pd(one, _mm512_mul_pd(_mm512_mul_pd(alpha, g), _mm512_sub_pd(one, s)));
      __m512d v = _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(d, _mm512_add_pd(u, offset)), s), tail);
      // Clamped: the gradient passes where gate <= limit (a NaN gate passes none).
      if (o.clamped) v = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, limit, _CMP_LE_OQ), v);
      vmath_pd::store(m, dgate + i, v);
    }
    if (dup != nullptr) {
      __m512d v = _mm512_mul_pd(_mm512_mul_pd(d, g), s);
      if (o.clamped) v = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(y, low, _CMP_GE_OQ) & _mm512_cmp_pd_mask(y, limit, _CMP_LE_OQ), v);
      vmath_pd::store(m, dup + i, v);
    }
  }
  (void)zero;
}

// The same on four lanes with AVX2 + FMA: the same float64 operations, so the same results.
__attribute__((target("avx2,fma"))) inline __m256d sigmoid4(__m256d z) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d zero = _mm256_setzero_pd();
  const __m256d e = vmath_pd::exp_nonpos(_mm256_sub_pd(zero, vmath_pd::abs(z)));
  return _mm256_div_pd(_mm256_blendv_pd(e, one, _mm256_cmp_pd(z, zero, _CMP_GE_OQ)), _mm256_add_pd(one, e));
}

__attribute__((target("avx2"))) inline __m256d clamp_gate4(__m256d x, const GluOptions& o) {
  if (!o.clamped) return x;
  const __m256d limit = _mm256_set1_pd(o.limit);
  return _mm256_blendv_pd(x, limit, _mm256_cmp_pd(x, limit, _CMP_GT_OQ));
}

__attribute__((target("avx2"))) inline __m256d clamp_up4(__m256d y, const GluOptions& o) {
  if (!o.clamped) return y;
  const __m256d limit = _mm256_set1_pd(o.limit);
  const __m256d low = _mm256_set1_pd(-o.limit);
  const __m256d lower = _mm256_blendv_pd(y, low, _mm256_cmp_pd(y, low, _CMP_LT_OQ));
  return _mm256_blendv_pd(lower, limit, _mm256_cmp_pd(lower, limit, _CMP_GT_OQ));
}

__attribute__((target("avx2,fma"))) void forward_avx2(const float* gate, const float* up, float* out, size_t n, const GluOptions& o) {
  const __m256d alpha = _mm256_set1_pd(o.alpha);
  const __m256d offset = _mm256_set1_pd(o.offset);
  for (size_t i = 0; i < n; i += 4) {
    const __m128i tail = vmath_pd::mask4(n - i);
    const __m128i* m = n - i >= 4 ? nullptr : &tail;
    const __m256d g = clamp_gate4(vmath_pd::load(m, gate + i), o);
    const __m256d u = clamp_up4(vmath_pd::load(m, up + i), o);
    const __m256d s = sigmoid4(_mm256_mul_pd(alpha, g));
    vmath_pd::store(m, out + i, _mm256_mul_pd(_mm256_mul_pd(g, s), _mm256_add_pd(u, offset)));
  }
}

__attribute__((target("avx2,fma"))) void backward_avx2(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                                       const GluOptions& o) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d alpha = _mm256_set1_pd(o.alpha);
  const __m256d offset = _mm256_set1_pd(o.offset);
  const __m256d limit = _mm256_set1_pd(o.limit);
  const __m256d low = _mm256_set1_pd(-o.limit);
  for (size_t i = 0; i < n; i += 4) {
    const __m128i tail = vmath_pd::mask4(n - i);
    const __m128i* m = n - i >= 4 ? nullptr : &tail;
    const __m256d x = vmath_pd::load(m, gate + i);
    const __m256d y = vmath_pd::load(m, up + i);
    const __m256d g = clamp_gate4(x, o);
    const __m256d u = clamp_up4(y, o);
    const __m256d s = sigmoid4(_mm256_mul_pd(alpha, g));
    const __m256d d = vmath_pd::load(m, grad + i);
    if (dgate != nullptr) {
      const __m256d tail = _mm256_add_pd(one, _mm256_mul_pd(_mm256_mul_pd(alpha, g), _mm256_sub_pd(one, s)));
      __m256d v = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(d, _mm256_add_pd(u, offset)), s), tail);
      // Clamped: the gradient passes where gate <= limit (a NaN gate passes none).
      if (o.clamped) v = _mm256_and_pd(_mm256_cmp_pd(x, limit, _CMP_LE_OQ), v);
      vmath_pd::store(m, dgate + i, v);
    }
    if (dup != nullptr) {
      __m256d v = _mm256_mul_pd(_mm256_mul_pd(d, g), s);
      if (o.clamped) v = _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(y, low, _CMP_GE_OQ), _mm256_cmp_pd(y, limit, _CMP_LE_OQ)), v);
      vmath_pd::store(m, dup + i, v);
    }
  }
}

}  // namespace

void gated_activation_ref(const float* gate, const float* up, float* out, size_t n, const GluOptions& o) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate_of(gate[i], o);
    const double u = up_of(up[i], o);
    out[i] = static_cast<float>(g * sigmoid(o.alpha * g) * (u + o.offset));
  }
}

void gated_activation_backward_ref(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                   const GluOptions& o) {
  for (size_t i = 0; i < n; ++i) {
    const double x = gate[i];
    const double y = up[i];
    const double g = gate_of(x, o);
    const double u = up_of(y, o);
    const double s = sigmoid(o.alpha * g);
    const double d = grad[i];
    if (dgate != nullptr) dgate[i] = !o.clamped || x <= o.limit ? static_cast<float>(d * (u + o.offset) * s * (1.0 + o.alpha * g * (1.0 - s))) : 0.0f;
    if (dup != nullptr) dup[i] = !o.clamped || (y >= -o.limit && y <= o.limit) ? static_cast<float>(d * g * s) : 0.0f;
  }
}

void gated_activation(Isa isa, const float* gate, const float* up, float* out, size_t n, const GluOptions& o) {
  pool_for(n, 3 * n * sizeof(float), [&](size_t i0, size_t i1) {
    if (isa == Isa::Avx512) forward_avx512(gate + i0, up + i0, out + i0, i1 - i0, o);
    else if (isa == Isa::Avx2) forward_avx2(gate + i0, up + i0, out + i0, i1 - i0, o);
    else gated_activation_ref(gate + i0, up + i0, out + i0, i1 - i0, o);
  });
}

void gated_activation_backward(Isa isa, const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                               const GluOptions& o) {
  pool_for(n, 5 * n * sizeof(float), [&](size_t i0, size_t i1) {
    float* dg = dgate == nullptr ? nullptr : dgate + i0;
    float* du = dup == nullptr ? nullptr : dup + i0;
    if (isa == Isa::Avx512) backward_avx512(gate + i0, up + i0, grad + i0, dg, du, i1 - i0, o);
    else if (isa == Isa::Avx2) backward_avx2(gate + i0, up + i0, grad + i0, dg, du, i1 - i0, o);
    else gated_activation_backward_ref(gate + i0, up + i0, grad + i0, dg, du, i1 - i0, o);
  });
}

}  // namespace pleat
