// The AVX512-BF16 register tile of the bf16 GEMM (layouts: bf16_matmul_tile.h).
//
// Micro-kernel: as the fp32 AVX-512 one (matmul_tile.cc), an mr x nr block of out stays in zmm
// accumulators over the whole k loop; each step loads nr / 16 vectors of B pairs and broadcasts
// one A pair per row, and VDPBF16PS does two multiply-adds per lane where VFMADD231PS does one:
// twice the k covered per instruction for the same loads. 6 x 64: 24 accumulators + 4 for B +
// 1 broadcast (of 32 registers).
//
// VDPBF16PS ignores MXCSR: it rounds to nearest even, treats denormal inputs (the bf16 operands
// and the fp32 running sum) as zero and flushes denormal results to zero. bf16 weights and
// activations are not denormal in practice (bf16 keeps float32's exponent range); sums that
// small are lost, an absolute error of at most 2^-126 per step.
#include "bf16_matmul_tile.h"

#include <immintrin.h>

#include "pack_prefetch.h"
#include "tile_store.h"

#include <cstring>

namespace pleat {
namespace bf16gemm {

namespace {

// ---- packers (baseline code, auto-vectorised: they move bytes) ----------------------------------

// The bf16 (upper 16 bits) of x rounded to nearest even; NaN keeps a quiet NaN.
inline uint32_t bf16_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  const bool nan = (b & 0x7FFFFFFFu) > 0x7F800000u;
  const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
  return nan ? ((b | 0x00400000u) >> 16) : rounded;
}

inline uint32_t pair(float lo, float hi) { return bf16_of(lo) | (bf16_of(hi) << 16); }

template <int W>
void pack_a(const float* a, size_t lda, bool trans, size_t i0, size_t mc, size_t p0, size_t kc,
            uint32_t* dst) {
  const size_t kp = (kc + 1) / 2, full = kc / 2;
  for (size_t ir = 0; ir < mc; ir += W, dst += W * kp) {
    const size_t rows = mc - ir < W ? mc - ir : W;
    if (!trans) {
      // Row r of the panel is a contiguous run of A's row, pairs written with stride W.
      for (size_t r = 0; r < rows; ++r) {
        const float* src = a + (i0 + ir + r) * lda + p0;
        if (ir + r + gemm::kPackARowsAhead < mc) gemm::prefetch_run(src + gemm::kPackARowsAhead * lda, kc);
        for (size_t p = 0; p < full; ++p) dst[p * W + r] = pair(src[2 * p], src[2 * p + 1]);
        if (kp > full) dst[full * W + r] = bf16_of(src[2 * full]);
      }
      for (size_t r = rows; r < W; ++r) {
        for (size_t p = 0; p < kp; ++p) dst[p * W + r] = 0;
      }
    } else {
      // A stored k x m: a pair of k steps is two contiguous runs of W values.
      for (size_t p = 0; p < kp; ++p) {
        const float* s0 = a + (p0 + 2 * p) * lda + i0 + ir;
        const float* s1 = s0 + lda;
        if (2 * p + 1 + gemm::kPackARowsAhead < kc) {
          gemm::prefetch_run(s0 + gemm::kPackARowsAhead * lda, rows);
          gemm::prefetch_run(s1 + gemm::kPackARowsAhead * lda, rows);
        }
        uint32_t* d = dst + p * W;
        size_t r = 0;
        if (p < full) {
          for (; r < rows; ++r) d[r] = pair(s0[r], s1[r]);
        } else {
          for (; r < rows; ++r) d[r] = bf16_of(s0[r]);
        }
        for (; r < W; ++r) d[r] = 0;
      }
    }
  }
}

template <int W>
void pack_b(const float* b, size_t ldb, bool trans, size_t p0, size_t kc, size_t j0, size_t nc,
            uint32_t* dst) {
  const size_t kp = (kc + 1) / 2, full = kc / 2;
  for (size_t jr = 0; jr < nc; jr += W, dst += W * kp) {
    const size_t cols = nc - jr < W ? nc - jr : W;
    if (!trans) {
      for (size_t p = 0; p < kp; ++p) {
        const float* s0 = b + (p0 + 2 * p) * ldb + j0 + jr;
        const float* s1 = s0 + ldb;
        uint32_t* d = dst + p * W;
        size_t j = 0;
        if (p < full) {
          if (cols == W) {
            for (; j < W; ++j) d[j] = pair(s0[j], s1[j]);  // fixed count: vectorised
          } else {
            for (; j < cols; ++j) d[j] = pair(s0[j], s1[j]);
          }
        } else {
          for (; j < cols; ++j) d[j] = bf16_of(s0[j]);
        }
        for (; j < W; ++j) d[j] = 0;
      }
    } else {
      // B stored n x k: column j of op(B) is a contiguous run of B's row j.
      for (size_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + jr + j) * ldb + p0;
        for (size_t p = 0; p < full; ++p) dst[p * W + j] = pair(src[2 * p], src[2 * p + 1]);
        if (kp > full) dst[full * W + j] = bf16_of(src[2 * full]);
      }
      for (size_t j = cols; j < W; ++j) {
        for (size_t p = 0; p < kp; ++p) dst[p * W + j] = 0;
      }
    }
  }
}

// ---- AVX512-BF16 micro-kernel -------------------------------------------------------------------

template <int MR, int NV>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void kernel_bf16(
    size_t kp, const uint32_t* __restrict ap, const uint32_t* __restrict bp, float* c, size_t ldc,
    bool add, int rows, int cols) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  prefetch_tile(c, ldc, rows, 64 * NV);
  for (size_t p = 0; p < kp; ++p) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_load_si512(bp + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
    ap += MR;
    bp += 16 * NV;
  }
  store_tile_avx512<MR, NV>(acc, c, ldc, rows, cols, add);
}

constexpr int kMr = 6, kNv = 4;

// kcp 256 pairs: a B panel of 256 x 64 words is 64 KiB, as the fp32 tile's (256 k x 64 floats).
const Tile kTile{kMr, 16 * kNv, 256, kMr * 48, 4096, kernel_bf16<kMr, kNv>, pack_a<kMr>, pack_b<16 * kNv>};

}  // namespace

const Tile& tile() { return kTile; }

}  // namespace bf16gemm
}  // namespace pleat
