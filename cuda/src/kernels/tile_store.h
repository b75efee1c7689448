// The out tile of a register tile, shared by the float32 and bf16 GEMMs (matmul_tile.cc,
// bf16_matmul_tile.cc, gemm_driver.h): its prefetch, and the write-back of an AVX-512 tile, where
// acc[r][v] holds rows r < MR, columns 16v..16v+15 of the tile; only the first `rows` rows and
// `cols` columns are real (masked past them), and with `add` the tile is added to what c holds.
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace pleat {

// Asks for the lines of `rows` rows of `row_bytes` from c (rows ldc floats apart), so that the
// tile's final loads and stores hit L1.
inline void prefetch_tile(const float* c, size_t ldc, int rows, int row_bytes) {
  for (int r = 0; r < rows; ++r) {
    const char* cr = reinterpret_cast<const char*>(c + static_cast<size_t>(r) * ldc);
    for (int off = 0; off < row_bytes; off += 64) _mm_prefetch(cr + off, _MM_HINT_T0);
    _mm_prefetch(cr + row_bytes - 1, _MM_HINT_T0);  // the row may straddle one more line
  }
}

template <int MR, int NV>
__attribute__((target("avx512f"), always_inline)) inline void store_tile_avx512(__m512 (&acc)[MR][NV], float* c, size_t ldc, int rows, int cols,
                                                                                 bool add) {
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int left = cols - 16 * v;
    mask[v] = left >= 16 ? static_cast<__mmask16>(0xFFFF)
              : left <= 0 ? static_cast<__mmask16>(0)
                          : static_cast<__mmask16>((1u << left) - 1u);
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    float* cr = c + static_cast<size_t>(r) * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 x = acc[r][v];
      if (add) x = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], cr + 16 * v), x);
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], x);
    }
  }
}

}  // namespace pleat
