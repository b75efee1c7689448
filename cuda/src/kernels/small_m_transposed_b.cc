// small_m_transposed_b (see small_m_transposed_b.h): AVX-512 only.
#include "small_m_transposed_b.h"

#include <immintrin.h>

#include <algorithm>

#include "gemm_driver.h"
#include "scratch.h"
#include "transpose16.h"

namespace pleat {
namespace gemm {

namespace {

thread_local Scratch<float> t_rows_t;

// Each of the 16 B rows of a column block is a stream of its own, more than the hardware
// prefetchers follow: every 16 k, ask for the line this many ahead in each (as pack_b does).
constexpr size_t kRowLinesAhead = 8;

// at[p * 16 + i] = op(A)[i0 + i, p0 + p] for i < rows, 0 past them. A stored m x k is turned 16 x 16
// blocks at a time in registers (a float at a time it cost as much as the FMAs at n 256).
__attribute__((target("avx512f"))) void transpose_rows(const GemmArgs& g, const float* a, size_t i0, size_t rows, size_t p0, size_t kc,
                                                       float* at) {
  const size_t lda = g.trans_a ? g.m : g.k;
  size_t p = 0;
  if (!g.trans_a) {
    alignas(64) static const float zeros[16] = {};
    const float* src[16];
    for (size_t i = 0; i < 16; ++i) src[i] = i < rows ? a + (i0 + i) * lda + p0 : zeros;
    for (; p + 16 <= kc; p += 16) {
      transpose16(src, at + p * 16, 16);
      for (size_t i = 0; i < rows; ++i) src[i] += 16;
    }
  }
  for (; p < kc; ++p) {
    float* dst = at + p * 16;
    for (size_t i = 0; i < 16; ++i) dst[i] = i < rows ? (g.trans_a ? a[(p0 + p) * lda + i0 + i] : a[(i0 + i) * lda + p0 + p]) : 0.0f;
  }
}

// Out rows [i0, i0 + rows) x columns [j0, j0 + cols) (cols <= 16) over the k block [p0, p0 + kc):
// acc[q] holds column j0 + q for the 16 rows, then the 16 x 16 block is turned into rows of out.
__attribute__((target("avx512f"))) void column_block(const float* at, const float* b, size_t ldb, size_t p0, size_t kc, float* c,
                                                     size_t ldc, size_t rows, size_t cols, bool add) {
  const float* src[16];
  for (size_t q = 0; q < 16; ++q) src[q] = b + (q < cols ? q : 0) * ldb + p0;  // columns past cols repeat the first, never stored
  __m512 acc[16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; ++q) acc[q] = _mm512_setzero_ps();
  for (size_t p = 0; p < kc; ++p) {
    if (p % 16 == 0) {
      for (size_t q = 0; q < cols; ++q) _mm_prefetch(reinterpret_cast<const char*>(src[q] + p + 16 * kRowLinesAhead), _MM_HINT_T0);
    }
    const __m512 av = _mm512_load_ps(at + p * 16);
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) acc[q] = _mm512_fmadd_ps(av, _mm512_set1_ps(src[q][p]), acc[q]);
  }
  alignas(64) float cols_major[16 * 16];
  alignas(64) float rows_major[16 * 16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; ++q) _mm512_store_ps(cols_major + q * 16, acc[q]);
  const float* col_rows[16];
  for (int q = 0; q < 16; ++q) col_rows[q] = cols_major + q * 16;
  transpose16(col_rows, rows_major, 16);  // rows_major[i * 16 + q] = column q's row i
  const __mmask16 mask = cols >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1u);
  for (size_t i = 0; i < rows; ++i) {
    float* cr = c + i * ldc;
    __m512 x = _mm512_load_ps(rows_major + i * 16);
    if (add) x = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, cr), x);
    _mm512_mask_storeu_ps(cr, mask, x);
  }
}

}  // namespace

bool small_m_transposed_b(const GemmArgs& g, size_t kc_block, const float* a, const float* b, float* c, size_t m0, size_t m1, size_t n0,
                          size_t n1) {
  const size_t ldb = g.k;
  const size_t ldc = g.n;
  const size_t kc_max = gemm_driver::balanced_block(g.k, kc_block, 1);
  float* at = t_rows_t.get(kc_max * 16);
  if (at == nullptr) return false;
  for (size_t pc = 0; pc < g.k; pc += kc_max) {
    const size_t kc = std::min(kc_max, g.k - pc);
    // The first k block overwrites out unless accumulating; later ones add their partial sums.
    const bool add = g.accumulate || pc > 0;
    for (size_t i0 = m0; i0 < m1; i0 += 16) {
      const size_t rows = std::min<size_t>(16, m1 - i0);
      transpose_rows(g, a, i0, rows, pc, kc, at);
      for (size_t j0 = n0; j0 < n1; j0 += 16) {
        column_block(at, b + j0 * ldb, ldb, pc, kc, c + i0 * ldc + j0, ldc, rows, std::min<size_t>(16, n1 - j0), add);
      }
    }
  }
  return true;
}

}  // namespace gemm
}  // namespace pleat
