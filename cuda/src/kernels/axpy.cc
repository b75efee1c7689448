// axpy kernels: scalar reference, AVX2+FMA and AVX-512 versions (see axpy.h for the contract).
//
// The vector loops are unrolled by four registers so that loads of the next block overlap the
// FMAs of this one; the tail is done with masked loads/stores, so every element goes through
// the same instruction sequence as the body (no separate scalar tail with other rounding).
// Loads are unaligned: a JS view may start at any element offset of its buffer.
#include "axpy.h"

#include <immintrin.h>

namespace pleat {

// ---- scalar references ------------------------------------------------------------------------

void axpy_f32_ref(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = y[i] + a * x[i];
}

void axpy_f64_ref(double a, const double* x, double* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = y[i] + a * x[i];
}

namespace {

// ---- AVX-512 ----------------------------------------------------------------------------------

__attribute__((target("avx512f"))) void axpy_f32_avx512(float a, const float* x, float* y,
                                                          size_t n) {
  const __m512 va = _mm512_set1_ps(a);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
    const __m512 x2 = _mm512_loadu_ps(x + i + 32), x3 = _mm512_loadu_ps(x + i + 48);
    const __m512 y0 = _mm512_loadu_ps(y + i), y1 = _mm512_loadu_ps(y + i + 16);
    const __m512 y2 = _mm512_loadu_ps(y + i + 32), y3 = _mm512_loadu_ps(y + i + 48);
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, x0, y0));
    _mm512_storeu_ps(y + i + 16, _mm512_fmadd_ps(va, x1, y1));
    _mm512_storeu_ps(y + i + 32, _mm512_fmadd_ps(va, x2, y2));
    _mm512_storeu_ps(y + i + 48, _mm512_fmadd_ps(va, x3, y3));
  }
  for (; i < n; i += 16) {
    const size_t left = n - i;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                   : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 vx = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 vy = _mm512_maskz_loadu_ps(m, y + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, vx, vy));
  }
}

__attribute__((target("avx512f"))) void axpy_f64_avx512(double a, const double* x, double* y,
                                                          size_t n) {
  const __m512d va = _mm512_set1_pd(a);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512d x0 = _mm512_loadu_pd(x + i), x1 = _mm512_loadu_pd(x + i + 8);
    const __m512d x2 = _mm512_loadu_pd(x + i + 16), x3 = _mm512_loadu_pd(x + i + 24);
    const __m512d y0 = _mm512_loadu_pd(y + i), y1 = _mm512_loadu_pd(y + i + 8);
    const __m512d y2 = _mm512_loadu_pd(y + i + 16), y3 = _mm512_loadu_pd(y + i + 24);
    // mul then add (not fmadd): matches JS rounding bit for bit.
    _mm512_storeu_pd(y + i, _mm512_add_pd(y0, _mm512_mul_pd(va, x0)));
    _mm512_storeu_pd(y + i + 8, _mm512_add_pd(y1, _mm512_mul_pd(va, x1)));
    _mm512_storeu_pd(y + i + 16, _mm512_add_pd(y2, _mm512_mul_pd(va, x2)));
    _mm512_storeu_pd(y + i + 24, _mm512_add_pd(y3, _mm512_mul_pd(va, x3)));
  }
  for (; i < n; i += 8) {
    const size_t left = n - i;
    const __mmask8 m = left >= 8 ? static_cast<__mmask8>(0xFF)
                                 : static_cast<__mmask8>((1u << left) - 1u);
    const __m512d vx = _mm512_maskz_loadu_pd(m, x + i);
    const __m512d vy = _mm512_maskz_loadu_pd(m, y + i);
    _mm512_mask_storeu_pd(y + i, m, _mm512_add_pd(vy, _mm512_mul_pd(va, vx)));
  }
}

// ---- AVX2 + FMA -------------------------------------------------------------------------------

// Lane mask with the first `left` (0..8) 32-bit lanes set, for maskload / maskstore.
__attribute__((target("avx2"))) __m256i lanes32(size_t left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Lane mask with the first `left` (0..4) 64-bit lanes set.
__attribute__((target("avx2"))) __m256i lanes64(size_t left) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(left)),
                            _mm256_setr_epi64x(0, 1, 2, 3));
}

__attribute__((target("avx2,fma"))) void axpy_f32_avx2(float a, const float* x, float* y,
                                                         size_t n) {
  const __m256 va = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    const __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
    const __m256 y0 = _mm256_loadu_ps(y + i), y1 = _mm256_loadu_ps(y + i + 8);
    const __m256 y2 = _mm256_loadu_ps(y + i + 16), y3 = _mm256_loadu_ps(y + i + 24);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, x0, y0));
    _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(va, x1, y1));
    _mm256_storeu_ps(y + i + 16, _mm256_fmadd_ps(va, x2, y2));
    _mm256_storeu_ps(y + i + 24, _mm256_fmadd_ps(va, x3, y3));
  }
  for (; i < n; i += 8) {
    const __m256i m = lanes32(n - i >= 8 ? 8 : n - i);
    const __m256 vx = _mm256_maskload_ps(x + i, m);
    const __m256 vy = _mm256_maskload_ps(y + i, m);
    _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(va, vx, vy));
  }
}

__attribute__((target("avx2"))) void axpy_f64_avx2(double a, const double* x, double* y,
                                                     size_t n) {
  const __m256d va = _mm256_set1_pd(a);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256d x0 = _mm256_loadu_pd(x + i), x1 = _mm256_loadu_pd(x + i + 4);
    const __m256d x2 = _mm256_loadu_pd(x + i + 8), x3 = _mm256_loadu_pd(x + i + 12);
    const __m256d y0 = _mm256_loadu_pd(y + i), y1 = _mm256_loadu_pd(y + i + 4);
    const __m256d y2 = _mm256_loadu_pd(y + i + 8), y3 = _mm256_loadu_pd(y + i + 12);
    _mm256_storeu_pd(y + i, _mm256_add_pd(y0, _mm256_mul_pd(va, x0)));
    _mm256_storeu_pd(y + i + 4, _mm256_add_pd(y1, _mm256_mul_pd(va, x1)));
    _mm256_storeu_pd(y + i + 8, _mm256_add_pd(y2, _mm256_mul_pd(va, x2)));
    _mm256_storeu_pd(y + i + 12, _mm256_add_pd(y3, _mm256_mul_pd(va, x3)));
  }
  for (; i < n; i += 4) {
    const __m256i m = lanes64(n - i >= 4 ? 4 : n - i);
    const __m256d vx = _mm256_maskload_pd(x + i, m);
    const __m256d vy = _mm256_maskload_pd(y + i, m);
    _mm256_maskstore_pd(y + i, m, _mm256_add_pd(vy, _mm256_mul_pd(va, vx)));
  }
}

}  // namespace

// ---- dispatch ---------------------------------------------------------------------------------

void axpy_f32(Isa isa, float a, const float* x, float* y, size_t n) {
  switch (isa) {
    case Isa::Avx512: return axpy_f32_avx512(a, x, y, n);
    case Isa::Avx2: return axpy_f32_avx2(a, x, y, n);
    case Isa::Scalar: return axpy_f32_ref(a, x, y, n);
  }
}

void axpy_f64(Isa isa, double a, const double* x, double* y, size_t n) {
  switch (isa) {
    case Isa::Avx512: return axpy_f64_avx512(a, x, y, n);
    case Isa::Avx2: return axpy_f64_avx2(a, x, y, n);
    case Isa::Scalar: return axpy_f64_ref(a, x, y, n);
  }
}

}  // namespace pleat
