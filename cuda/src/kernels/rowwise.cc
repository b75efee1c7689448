// softmax_rows, rmsnorm_rows, swiglu (see rows.h).
//
// Precision choices (the tests hold these to 1e-5 relative against a float64 reference):
//   softmax: exponentials in float32 (vmath.h, ~2 ulp), summed in float32 over blocks (8 terms
//            per lane) and the block sums in float64, so a long row does not lose digits to float32
//            summation; then one multiply by the rounded 1 / sum.
//   rmsnorm: the sum of squares in float64 (squares of floats are exact there), rstd in float64.
// Rows split across the pool when the call moves at least kPoolMinBytes; every row is computed
// by one thread in one fixed order, so results do not depend on the thread count.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "rows.h"
#include "thread_pool.h"
#include "vmath.h"

namespace pleat {

// ---- references --------------------------------------------------------------------------------

namespace {

void softmax_row_ref(const float* x, float* out, size_t cols) {
  float mx = -std::numeric_limits<float>::infinity();
  for (size_t j = 0; j < cols; ++j) {
    if (x[j] > mx) mx = x[j];
  }
  double sum = 0.0;
  for (size_t j = 0; j < cols; ++j) {
    const double e = std::exp(static_cast<double>(x[j]) - mx);
    out[j] = static_cast<float>(e);
    sum += e;
  }
  for (size_t j = 0; j < cols; ++j) out[j] = static_cast<float>(out[j] / sum);
}

double rstd_of(double sum_squares, size_t cols, double eps) {
  return 1.0 / std::sqrt((cols == 0 ? 0.0 : sum_squares / static_cast<double>(cols)) + eps);
}

}  // namespace

void softmax_rows_ref(const float* x, float* out, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) softmax_row_ref(x + r * cols, out + r * cols, cols);
}

void rmsnorm_rows_ref(const float* x, const float* weight, float* out, float* rstd32,
                      double* rstd64, size_t rows, size_t cols, double eps) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double ss = 0.0;
    for (size_t j = 0; j < cols; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const double rstd = rstd_of(ss, cols, eps);
    if (rstd64 != nullptr) rstd64[r] = rstd;
    if (rstd32 != nullptr) rstd32[r] = static_cast<float>(rstd);
    for (size_t j = 0; j < cols; ++j) out[r * cols + j] = static_cast<float>(xr[j] * rstd * weight[j]);
  }
}

void swiglu_ref(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i];
    const double e = std::exp(-std::fabs(g));
    const double sig = (g >= 0.0 ? 1.0 : e) / (1.0 + e);
    out[i] = static_cast<float>(g * sig * up[i]);
  }
}

namespace {

// Loop shape of every vector kernel below: a body of whole vectors with plain loads and stores,
// then at most one masked vector for the tail. (Masked stores in the body would be correct too,
// but AVX2's vmaskmovps store is microcoded and slow on AMD cores.) Sums keep two or four
// independent accumulators so the add latency does not serialise the loop.

// ---- AVX-512 -----------------------------------------------------------------------------------

__attribute__((target("avx512f"))) void softmax_row_avx512(const float* x, float* out, size_t cols) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const size_t body = cols / 16 * 16;
  const __mmask16 tail = vmath::mask16(static_cast<ptrdiff_t>(cols - body));
  __m512 m0 = ninf, m1 = ninf;
  size_t j = 0;
  for (; j + 32 <= body; j += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + j + 16));
  }
  if (j < body) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
  if (tail != 0) m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(ninf, tail, x + body));
  const __m512 mx = _mm512_set1_ps(vmath::hmax(_mm512_max_ps(m0, m1)));
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  // Blocks of 256: float partial sums (8 terms per lane, error ~8 ulp of the block sum) widened
  // into the float64 total once per block instead of once per vector (the widening cost a
  // quarter of the loop).
  for (j = 0; j + 32 <= body;) {
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    for (const size_t stop = j + 256 < body ? j + 256 : body; j + 32 <= stop; j += 32) {
      const __m512 e0 = vmath::exp_nonpos(_mm512_sub_ps(_mm512_loadu_ps(x + j), mx));
      const __m512 e1 = vmath::exp_nonpos(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), mx));
      _mm512_storeu_ps(out + j, e0);
      _mm512_storeu_ps(out + j + 16, e1);
      b0 = _mm512_add_ps(b0, e0);
      b1 = _mm512_add_ps(b1, e1);
    }
    s0 = vmath::add_widened(s0, b0);
    s1 = vmath::add_widened(s1, b1);
  }
  if (j < body) {
    const __m512 e = vmath::exp_nonpos(_mm512_sub_ps(_mm512_loadu_ps(x + j), mx));
    _mm512_storeu_ps(out + j, e);
    s0 = vmath::add_widened(s0, e);
  }
  if (tail != 0) {
    const __m512 e = _mm512_maskz_mov_ps(tail, vmath::exp_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + body), mx)));
    _mm512_mask_storeu_ps(out + body, tail, e);
    s1 = vmath::add_widened(s1, e);
  }
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / vmath::hsum(_mm512_add_pd(s0, s1))));
  for (j = 0; j < body; j += 16) _mm512_storeu_ps(out + j, _mm512_mul_ps(_mm512_loadu_ps(out + j), inv));
  if (tail != 0) _mm512_mask_storeu_ps(out + body, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, out + body), inv));
}

__attribute__((target("avx512f"))) __m512d square_widened(__m512d acc, __m512 v, bool high) {
  const __m256 half = high ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)) : _mm512_castps512_ps256(v);
  const __m512d d = _mm512_cvtps_pd(half);
  return _mm512_fmadd_pd(d, d, acc);
}

__attribute__((target("avx512f"))) double sum_squares_avx512(const float* x, size_t cols) {
  const size_t body = cols / 16 * 16;
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  size_t j = 0;
  for (; j + 32 <= body; j += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
    a0 = square_widened(a0, v0, false);
    a1 = square_widened(a1, v0, true);
    a2 = square_widened(a2, v1, false);
    a3 = square_widened(a3, v1, true);
  }
  if (j < body) {
    const __m512 v = _mm512_loadu_ps(x + j);
    a0 = square_widened(a0, v, false);
    a1 = square_widened(a1, v, true);
  }
  if (body < cols) {
    const __m512 v = _mm512_maskz_loadu_ps(vmath::mask16(static_cast<ptrdiff_t>(cols - body)), x + body);
    a2 = square_widened(a2, v, false);
    a3 = square_widened(a3, v, true);
  }
  return vmath::hsum(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

__attribute__((target("avx512f"))) void scale_row_avx512(const float* x, const float* w, float s,
                                                         float* out, size_t cols) {
  const __m512 vs = _mm512_set1_ps(s);
  const size_t body = cols / 16 * 16;
  for (size_t j = 0; j < body; j += 16) {
    _mm512_storeu_ps(out + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + j), vs), _mm512_loadu_ps(w + j)));
  }
  if (body < cols) {
    const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(cols - body));
    const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + body), vs), _mm512_maskz_loadu_ps(m, w + body));
    _mm512_mask_storeu_ps(out + body, m, v);
  }
}

// sigmoid(g) = 1 / (1 + e) for g >= 0 and e / (1 + e) below, with e = exp(-|g|) <= 1, so the
// exponential never overflows.
__attribute__((target("avx512f"))) __m512 swiglu16(__m512 g, __m512 u) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = vmath::exp_nonpos(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
  const __mmask16 pos = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 sig = _mm512_div_ps(_mm512_mask_blend_ps(pos, e, one), _mm512_add_ps(one, e));
  return _mm512_mul_ps(_mm512_mul_ps(g, sig), u);
}

__attribute__((target("avx512f"))) void swiglu_avx512(const float* gate, const float* up, float* out, size_t n) {
  const size_t body = n / 16 * 16;
  for (size_t i = 0; i < body; i += 16) _mm512_storeu_ps(out + i, swiglu16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (body < n) {
    const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(n - body));
    _mm512_mask_storeu_ps(out + body, m, swiglu16(_mm512_maskz_loadu_ps(m, gate + body), _mm512_maskz_loadu_ps(m, up + body)));
  }
}

// ---- AVX2 + FMA --------------------------------------------------------------------------------

__attribute__((target("avx2,fma"))) void softmax_row_avx2(const float* x, float* out, size_t cols) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const size_t body = cols / 8 * 8;
  const __m256i tail = vmath::mask8(static_cast<ptrdiff_t>(cols - body));
  __m256 m0 = ninf, m1 = ninf;
  size_t j = 0;
  for (; j + 16 <= body; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + j + 8));
  }
  if (j < body) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
  if (body < cols) m1 = _mm256_max_ps(m1, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + body, tail), _mm256_castsi256_ps(tail)));
  const __m256 mx = _mm256_set1_ps(vmath::hmax(_mm256_max_ps(m0, m1)));
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  // Float partial sums over blocks of 128 (8 terms per lane), widened once per block.
  for (j = 0; j + 16 <= body;) {
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    for (const size_t stop = j + 128 < body ? j + 128 : body; j + 16 <= stop; j += 16) {
      const __m256 e0 = vmath::exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + j), mx));
      const __m256 e1 = vmath::exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), mx));
      _mm256_storeu_ps(out + j, e0);
      _mm256_storeu_ps(out + j + 8, e1);
      b0 = _mm256_add_ps(b0, e0);
      b1 = _mm256_add_ps(b1, e1);
    }
    s0 = vmath::add_widened(s0, b0);
    s1 = vmath::add_widened(s1, b1);
  }
  if (j < body) {
    const __m256 e = vmath::exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(x + j), mx));
    _mm256_storeu_ps(out + j, e);
    s0 = vmath::add_widened(s0, e);
  }
  if (body < cols) {
    const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(tail), vmath::exp_nonpos(_mm256_sub_ps(_mm256_maskload_ps(x + body, tail), mx)));
    _mm256_maskstore_ps(out + body, tail, e);
    s1 = vmath::add_widened(s1, e);
  }
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / vmath::hsum(_mm256_add_pd(s0, s1))));
  for (j = 0; j < body; j += 8) _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_loadu_ps(out + j), inv));
  if (body < cols) _mm256_maskstore_ps(out + body, tail, _mm256_mul_ps(_mm256_maskload_ps(out + body, tail), inv));
}

__attribute__((target("avx2,fma"))) __m256d square_widened(__m256d acc, __m128 half) {
  const __m256d d = _mm256_cvtps_pd(half);
  return _mm256_fmadd_pd(d, d, acc);
}

__attribute__((target("avx2,fma"))) double sum_squares_avx2(const float* x, size_t cols) {
  const size_t body = cols / 8 * 8;
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  size_t j = 0;
  for (; j + 16 <= body; j += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    a0 = square_widened(a0, _mm256_castps256_ps128(v0));
    a1 = square_widened(a1, _mm256_extractf128_ps(v0, 1));
    a2 = square_widened(a2, _mm256_castps256_ps128(v1));
    a3 = square_widened(a3, _mm256_extractf128_ps(v1, 1));
  }
  if (j < body) {
    const __m256 v = _mm256_loadu_ps(x + j);
    a0 = square_widened(a0, _mm256_castps256_ps128(v));
    a1 = square_widened(a1, _mm256_extractf128_ps(v, 1));
  }
  if (body < cols) {
    const __m256 v = _mm256_maskload_ps(x + body, vmath::mask8(static_cast<ptrdiff_t>(cols - body)));
    a2 = square_widened(a2, _mm256_castps256_ps128(v));
    a3 = square_widened(a3, _mm256_extractf128_ps(v, 1));
  }
  return vmath::hsum(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
}

__attribute__((target("avx2,fma"))) void scale_row_avx2(const float* x, const float* w, float s,
                                                        float* out, size_t cols) {
  const __m256 vs = _mm256_set1_ps(s);
  const size_t body = cols / 8 * 8;
  for (size_t j = 0; j < body; j += 8) {
    _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vs), _mm256_loadu_ps(w + j)));
  }
  if (body < cols) {
    const __m256i m = vmath::mask8(static_cast<ptrdiff_t>(cols - body));
    const __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(x + body, m), vs), _mm256_maskload_ps(w + body, m));
    _mm256_maskstore_ps(out + body, m, v);
  }
}

__attribute__((target("avx2,fma"))) __m256 swiglu8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = vmath::exp_nonpos(_mm256_or_ps(g, _mm256_set1_ps(-0.0f)));  // exp(-|g|)
  const __m256 pos = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_GE_OQ);
  const __m256 sig = _mm256_div_ps(_mm256_blendv_ps(e, one, pos), _mm256_add_ps(one, e));
  return _mm256_mul_ps(_mm256_mul_ps(g, sig), u);
}

__attribute__((target("avx2,fma"))) void swiglu_avx2(const float* gate, const float* up, float* out, size_t n) {
  const size_t body = n / 8 * 8;
  for (size_t i = 0; i < body; i += 8) _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (body < n) {
    const __m256i m = vmath::mask8(static_cast<ptrdiff_t>(n - body));
    _mm256_maskstore_ps(out + body, m, swiglu8(_mm256_maskload_ps(gate + body, m), _mm256_maskload_ps(up + body, m)));
  }
}

}  // namespace

// ---- dispatch ----------------------------------------------------------------------------------

void softmax_rows(Isa isa, const float* x, float* out, size_t rows, size_t cols) {
  if (isa == Isa::Scalar) return softmax_rows_ref(x, out, rows, cols);
  const auto row = isa == Isa::Avx512 ? softmax_row_avx512 : softmax_row_avx2;
  pool_for(rows, 2 * rows * cols * sizeof(float), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) row(x + r * cols, out + r * cols, cols);
  });
}

void rmsnorm_rows(Isa isa, const float* x, const float* weight, float* out, float* rstd32,
                  double* rstd64, size_t rows, size_t cols, double eps) {
  if (isa == Isa::Scalar) return rmsnorm_rows_ref(x, weight, out, rstd32, rstd64, rows, cols, eps);
  const auto sum_squares = isa == Isa::Avx512 ? sum_squares_avx512 : sum_squares_avx2;
  const auto scale_row = isa == Isa::Avx512 ? scale_row_avx512 : scale_row_avx2;
  pool_for(rows, 2 * rows * cols * sizeof(float), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      const float* xr = x + r * cols;
      const double rstd = rstd_of(sum_squares(xr, cols), cols, eps);
      if (rstd64 != nullptr) rstd64[r] = rstd;
      if (rstd32 != nullptr) rstd32[r] = static_cast<float>(rstd);
      scale_row(xr, weight, static_cast<float>(rstd), out + r * cols, cols);
    }
  });
}

void swiglu(Isa isa, const float* gate, const float* up, float* out, size_t n) {
  if (isa == Isa::Scalar) return swiglu_ref(gate, up, out, n);
  const auto fn = isa == Isa::Avx512 ? swiglu_avx512 : swiglu_avx2;
  // Ranges in whole 16-float blocks, so only the last range has a masked tail.
  const size_t blocks = (n + 15) / 16;
  pool_for(blocks, 3 * n * sizeof(float), [&](size_t begin, size_t end) {
    const size_t i0 = begin * 16, i1 = end * 16 < n ? end * 16 : n;
    fn(gate + i0, up + i0, out + i0, i1 - i0);
  });
}

}  // namespace pleat
