// GEMM register tiles: packers and micro-kernels for AVX-512, AVX2+FMA and scalar (see
// matmul_tile.h for the packed layouts).
//
// Micro-kernel: an mr x nr block of out lives in registers for the whole k loop; each k step
// loads nr / lanes vectors of B and broadcasts mr values of A, i.e. mr * nr / lanes FMAs for
// mr + nr / lanes loads, which keeps the FMA pipes (not the load ports) the bottleneck.
//   AVX-512: 6 x 64 = 24 zmm accumulators + 4 for B + 1 broadcast (of 32 registers).
//   AVX2:    6 x 16 = 12 ymm accumulators + 2 for B + 1 broadcast (of 16 registers).
// Measured on Zen 4 (1024^3, one thread): 6 x 64 ~87% of the FMA peak, 14 x 32 and 8 x 48 ~82%;
// the kernel alone on cached panels runs at ~98%. The rest is the out tile: its rows are a
// matrix row apart (often a multiple of 4 KiB, so they share L1 sets) and come from L3, so the
// kernel prefetches them before its k loop, where the misses overlap the FMAs (+3..5%); fewer
// rows per tile (6) also means fewer conflicting lines.
// Edge tiles run the same k loop (the panels are zero-padded) and store with lane masks.
#include "matmul_tile.h"

#include <immintrin.h>

#include "pack_prefetch.h"
#include "tile_store.h"
#include "transpose16.h"

namespace pleat {
namespace gemm {

namespace {

// Software prefetch distances for B read where it lies in memory (issue 14, measured on Zen 5
// with the caches flushed between products: see bench/README.md's tensor suite). Rows of B a
// small-m product reads in place are ldb apart and each of the 16 rows a transposing pack reads
// is a stream of its own; the hardware prefetchers follow neither well, so a product whose B
// comes from memory ran latency-bound (a [16, 256] x [256, 256] product: 68 us cold, 16 hot).
// The small-m kernel asks for B's row p + kDirectPrefetchRows while it multiplies row p.
constexpr size_t kDirectPrefetchRows = 64;
// The transposing pack asks, in each of its 16 rows, for the line this many lines ahead.
constexpr size_t kPackPrefetchLines = 8;

// ---- packers (baseline code: they move bytes, the micro-kernel does the arithmetic) ------------

template <int W>
void pack_a(const float* a, size_t lda, bool trans, size_t i0, size_t mc, size_t p0, size_t kc,
            float* dst) {
  for (size_t ir = 0; ir < mc; ir += W, dst += W * kc) {
    const size_t rows = mc - ir < W ? mc - ir : W;
    if (!trans) {
      // Row r of the panel is a contiguous run of A's row; written with stride W.
      for (size_t r = 0; r < rows; ++r) {
        const float* src = a + (i0 + ir + r) * lda + p0;
        if (ir + r + kPackARowsAhead < mc) prefetch_run(src + kPackARowsAhead * lda, kc);
        for (size_t p = 0; p < kc; ++p) dst[p * W + r] = src[p];
      }
      for (size_t r = rows; r < W; ++r) {
        for (size_t p = 0; p < kc; ++p) dst[p * W + r] = 0.0f;
      }
    } else {
      // A stored k x m: each k step of the panel is a contiguous run of W values.
      for (size_t p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * lda + i0 + ir;
        if (p + kPackARowsAhead < kc) prefetch_run(src + kPackARowsAhead * lda, rows);
        float* d = dst + p * W;
        size_t r = 0;
        for (; r < rows; ++r) d[r] = src[r];
        for (; r < W; ++r) d[r] = 0.0f;
      }
    }
  }
}

template <int W>
void pack_b(const float* b, size_t ldb, bool trans, size_t p0, size_t kc, size_t j0, size_t nc,
            float* dst) {
  for (size_t jr = 0; jr < nc; jr += W, dst += W * kc) {
    const size_t cols = nc - jr < W ? nc - jr : W;
    if (!trans) {
      for (size_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * ldb + j0 + jr;
        float* d = dst + p * W;
        size_t j = 0;
        if (cols == W) {
          for (; j < W; ++j) d[j] = src[j];  // fixed count: the compiler emits vector moves
        } else {
          for (; j < cols; ++j) d[j] = src[j];
          for (; j < W; ++j) d[j] = 0.0f;
        }
      }
    } else {
      // B stored n x k: column j of op(B) is a contiguous run of B's row j.
      for (size_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + jr + j) * ldb + p0;
        for (size_t p = 0; p < kc; ++p) dst[p * W + j] = src[p];
      }
      for (size_t j = cols; j < W; ++j) {
        for (size_t p = 0; p < kc; ++p) dst[p * W + j] = 0.0f;
      }
    }
  }
}

// Columns [from, to) of a panel of a transposed B (stored n x k, the panel's first column at row
// j of B), one column at a time: the partial group of the packs below, after they zeroed it.
template <int W>
void copy_columns(const float* b, size_t ldb, size_t p0, size_t kc, size_t j, size_t from, size_t to, float* dst) {
  for (size_t c = from; c < to; ++c) {
    const float* src = b + (j + c) * ldb + p0;
    for (size_t p = 0; p < kc; ++p) dst[p * W + c] = src[p];
  }
}

// pack_b for the AVX-512 tile: B stored n x k (trans) is transposed 16 x 16 blocks at a time in
// registers (pack_b's loop stores one float a W-float stride apart: ~20% of a 1024 x 2816 x 1024
// product with transB). The same bytes land in the same places; the rest is pack_b.
template <int W>
__attribute__((target("avx512f"))) void pack_b_avx512(const float* b, size_t ldb, bool trans, size_t p0, size_t kc,
                                                      size_t j0, size_t nc, float* dst) {
  static_assert(W % 16 == 0, "panels of whole 16-column groups");
  if (!trans) {
    pack_b<W>(b, ldb, trans, p0, kc, j0, nc, dst);
    return;
  }
  const size_t k16 = kc / 16 * 16;
  for (size_t jr = 0; jr < nc; jr += W, dst += W * kc) {
    const size_t cols = nc - jr < W ? nc - jr : W;
    for (size_t g = 0; g < W; g += 16) {
      if (g + 16 > cols) {
        // A partial group: its 16 lanes zeroed a vector a k step (columns past the matrix stay
        // zero; stored one float at a time they took 60% of a [4, 256] x [32, 256]^T product,
        // narrow experts' dx), then the columns it has, column by column.
        const __m512 zero = _mm512_setzero_ps();
        for (size_t p = 0; p < kc; ++p) _mm512_storeu_ps(dst + p * W + g, zero);
        copy_columns<W>(b, ldb, p0, kc, j0 + jr, g, cols, dst);
        continue;
      }
      const float* rows[16];
      for (size_t i = 0; i < 16; ++i) rows[i] = b + (j0 + jr + g + i) * ldb + p0;
      for (size_t p = 0; p < k16; p += 16) {
        // Each of the 16 rows is a stream of its own, more than the hardware prefetchers follow
        // when B comes from memory: ask for the line kPackPrefetchLines ahead in each.
        for (size_t i = 0; i < 16; ++i) _mm_prefetch(reinterpret_cast<const char*>(rows[i] + 16 * kPackPrefetchLines), _MM_HINT_T0);
        transpose16(rows, dst + p * W + g, W);
        for (size_t i = 0; i < 16; ++i) rows[i] += 16;
      }
      for (size_t p = k16; p < kc; ++p) {
        for (size_t i = 0; i < 16; ++i) dst[p * W + g + i] = rows[i][p - k16];
      }
    }
  }
}

// The eight rows r[0..7] (eight floats each) turned into eight columns: out[q] holds r[0..7][q].
__attribute__((target("avx2"))) inline void transpose8(const __m256 (&r)[8], __m256 (&out)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int q = 0; q < 4; ++q) {
    out[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
    out[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
  }
}

// pack_b for the AVX2 tile, as pack_b_avx512 above: B stored n x k (trans) turned 8 x 8 blocks at
// a time in registers instead of a float at a time. The same bytes in the same places.
template <int W>
__attribute__((target("avx2"))) void pack_b_avx2(const float* b, size_t ldb, bool trans, size_t p0, size_t kc, size_t j0, size_t nc,
                                                 float* dst) {
  static_assert(W % 8 == 0, "panels of whole 8-column groups");
  if (!trans) {
    pack_b<W>(b, ldb, trans, p0, kc, j0, nc, dst);
    return;
  }
  const size_t k8 = kc / 8 * 8;
  for (size_t jr = 0; jr < nc; jr += W, dst += W * kc) {
    const size_t cols = nc - jr < W ? nc - jr : W;
    for (size_t g = 0; g < W; g += 8) {
      if (g + 8 > cols) {
        // A partial group: zeroed a vector a k step, then the columns it has, column by column.
        const __m256 zero = _mm256_setzero_ps();
        for (size_t p = 0; p < kc; ++p) _mm256_storeu_ps(dst + p * W + g, zero);
        copy_columns<W>(b, ldb, p0, kc, j0 + jr, g, cols, dst);
        continue;
      }
      const float* rows[8];
      for (size_t i = 0; i < 8; ++i) rows[i] = b + (j0 + jr + g + i) * ldb + p0;
      for (size_t p = 0; p < k8; p += 8) {
        // A line ahead in each row's stream, once a line (16 floats).
        if (p % 16 == 0) {
          for (size_t i = 0; i < 8; ++i) _mm_prefetch(reinterpret_cast<const char*>(rows[i] + p + 16 * kPackPrefetchLines), _MM_HINT_T0);
        }
        __m256 in[8], out[8];
        for (size_t i = 0; i < 8; ++i) in[i] = _mm256_loadu_ps(rows[i] + p);
        transpose8(in, out);
        for (size_t q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (p + q) * W + g, out[q]);
      }
      for (size_t p = k8; p < kc; ++p) {
        for (size_t i = 0; i < 8; ++i) dst[p * W + g + i] = rows[i][p];
      }
    }
  }
}

// ---- AVX-512 -----------------------------------------------------------------------------------

// One register tile's k loop, its B rows either in a packed panel (kInPlace false: aligned,
// 16 NV floats apart) or where B lies (true: `ldb` apart, lanes past `cols` not read: the
// small-m kernel of matmul_tile.h). The same FMA chain either way.
template <int MR, int NV, bool kInPlace, bool kPrefetch = false>
__attribute__((target("avx512f"), always_inline)) inline void tile_avx512(size_t kc, const float* __restrict ap, const float* __restrict bp,
                                                                          size_t ldb, float* c, size_t ldc, bool add, int rows, int cols) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  __mmask16 lanes[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int left = cols - 16 * v;
    lanes[v] = left >= 16 ? static_cast<__mmask16>(0xFFFF) : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1u);
  }
  prefetch_tile(c, ldc, rows, 64 * NV);
  for (size_t p = 0; p < kc; ++p) {
    if constexpr (kPrefetch) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        if (16 * v < cols) _mm_prefetch(reinterpret_cast<const char*>(bp + kDirectPrefetchRows * ldb + 16 * v), _MM_HINT_T0);
    }
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = kInPlace ? _mm512_maskz_loadu_ps(lanes[v], bp + 16 * v) : _mm512_load_ps(bp + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    ap += MR;
    bp += kInPlace ? ldb : 16 * NV;
  }
  store_tile_avx512<MR, NV>(acc, c, ldc, rows, cols, add);
}

template <int MR, int NV>
__attribute__((target("avx512f"))) void kernel_avx512(size_t kc, const float* __restrict ap, const float* __restrict bp, float* c, size_t ldc,
                                                      bool add, int rows, int cols) {
  tile_avx512<MR, NV, false>(kc, ap, bp, 0, c, ldc, add, rows, cols);
}

template <int MR, int NV, bool kPrefetch>
__attribute__((target("avx512f"))) void direct_avx512(size_t kc, const float* __restrict ap, const float* __restrict b, size_t ldb, float* c,
                                                      size_t ldc, bool add, int rows, int cols) {
  tile_avx512<MR, NV, true, kPrefetch>(kc, ap, b, ldb, c, ldc, add, rows, cols);
}

// ---- AVX2 + FMA --------------------------------------------------------------------------------

__attribute__((target("avx2"))) __m256i lane_mask(int left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR, int NV>
__attribute__((target("avx2,fma"))) void kernel_avx2(size_t kc, const float* __restrict ap,
                                                     const float* __restrict bp, float* c,
                                                     size_t ldc, bool add, int rows, int cols) {
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  }
  prefetch_tile(c, ldc, rows, 32 * NV);
  for (size_t p = 0; p < kc; ++p) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(bp + 8 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(ap + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
    ap += MR;
    bp += 8 * NV;
  }
  const bool full = cols == 8 * NV;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    float* cr = c + static_cast<size_t>(r) * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m256 x = acc[r][v];
      if (full) {
        if (add) x = _mm256_add_ps(_mm256_loadu_ps(cr + 8 * v), x);
        _mm256_storeu_ps(cr + 8 * v, x);
      } else {
        const __m256i m = lane_mask(cols - 8 * v);
        if (add) x = _mm256_add_ps(_mm256_maskload_ps(cr + 8 * v, m), x);
        _mm256_maskstore_ps(cr + 8 * v, m, x);
      }
    }
  }
}

// ---- scalar (baseline x86-64; multiply then add, -ffp-contract=off) -----------------------------

template <int MR, int NR>
void kernel_scalar(size_t kc, const float* __restrict ap, const float* __restrict bp, float* c,
                   size_t ldc, bool add, int rows, int cols) {
  float acc[MR][NR] = {};
  for (size_t p = 0; p < kc; ++p) {
    for (int r = 0; r < MR; ++r) {
      for (int j = 0; j < NR; ++j) acc[r][j] += ap[r] * bp[j];
    }
    ap += MR;
    bp += NR;
  }
  for (int r = 0; r < rows; ++r) {
    float* cr = c + static_cast<size_t>(r) * ldc;
    for (int j = 0; j < cols; ++j) cr[j] = add ? cr[j] + acc[r][j] : acc[r][j];
  }
}

constexpr int kMr512 = 6, kNv512 = 4;
constexpr int kMr256 = 6, kNv256 = 2;
constexpr int kMrScalar = 4, kNrScalar = 8;

// k blocks of 512 (256 until 2026-12-04): each k block reads and writes the whole of out once
// more, and out comes from memory when it is larger than L3 (a product's out of 23 MB, the expert
// MLP's at hidden 1024). The k loop alone on cached panels runs at the FMA peak; with the real
// loops, out moving per row block cost ~10% (174-178 against 195 GFLOP/s with one out block
// reused, Zen 5). Twice the k block halves those passes: 1 thread, 2048 x 2816 x 1024 and its
// backward products 168-172 -> 176-186 GFLOP/s, interleaved runs. The A block (mc x kc, 576 KiB)
// and a B panel (kc x 64, 128 KiB) still fit a 1 MiB L2.
const Tile kAvx512{kMr512, 16 * kNv512, 512, kMr512 * 48, 4096,
                   kernel_avx512<kMr512, kNv512>, pack_a<kMr512>, pack_b_avx512<16 * kNv512>,
                   direct_avx512<kMr512, kNv512, false>, direct_avx512<kMr512, kNv512, true>};
const Tile kAvx2{kMr256, 8 * kNv256, 256, kMr256 * 48, 4096,
                 kernel_avx2<kMr256, kNv256>, pack_a<kMr256>, pack_b_avx2<8 * kNv256>, nullptr, nullptr};
const Tile kScalar{kMrScalar, kNrScalar, 256, 128, 2048,
                   kernel_scalar<kMrScalar, kNrScalar>, pack_a<kMrScalar>, pack_b<kNrScalar>, nullptr, nullptr};

}  // namespace

const Tile& tile_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return kAvx512;
    case Isa::Avx2: return kAvx2;
    case Isa::Scalar: return kScalar;
  }
  return kScalar;
}

}  // namespace gemm
}  // namespace pleat
