// transpose16.h: a 16 x 16 float transpose in AVX-512 registers (the GEMM's transposing packer).
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace pleat {
namespace gemm {

// GCC 12 warns "__Y is used uninitialized" inside its own avx512fintrin.h for the unpack and
// shuffle intrinsics (they start from _mm512_undefined_ps); a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// out + q * out_stride receives column q of the 16 x 16 block whose row i starts at rows[i]:
// out[q * out_stride + i] = rows[i][q]. Unaligned loads, unaligned stores.
__attribute__((target("avx512f"))) inline void transpose16(const float* const rows[16], float* out,
                                                                           size_t out_stride) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(rows[i]);
  // Pairs of rows interleaved: t[2k] = (r[2k], r[2k+1]) low halves of each 128-bit lane, t[2k+1] high.
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // Quads: 64-bit pairs of the interleaved rows, so each 128-bit lane holds 4 rows of one column.
  for (int k = 0; k < 4; ++k) {
    const __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * k + 2]), d = _mm512_castps_pd(t[4 * k + 3]);
    r[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // 128-bit lanes: gather lane l of the four row-quads into one vector per column.
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);       // lanes 0, 2 of quad 0 | 0, 2 of quad 1
    t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xDD);   // lanes 1, 3
    t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
    t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xDD);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xDD);
    r[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
    r[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xDD);
  }
  for (int q = 0; q < 16; ++q) _mm512_storeu_ps(out + q * out_stride, r[q]);
}

#pragma GCC diagnostic pop

}  // namespace gemm
}  // namespace pleat
