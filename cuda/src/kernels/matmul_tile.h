// Internal to matmul.cc: the per-ISA register tile (micro-kernel + packers) and cache blocking.
//
// Packed layouts (both zero-padded to full tiles, so the micro-kernel never branches on edges
// inside its k loop):
//   A panel: mr rows x kc, k-major: ap[p * mr + r] = op(A)[i0 + r, p0 + p]
//   B panel: kc x nr, k-major:     bp[p * nr + j] = op(B)[p0 + p, j0 + j]
#pragma once

#include <cstddef>

#include "cpu_features.h"

namespace pleat {
namespace gemm {

// out tile (rows x cols valid of the mr x nr tile at c, row stride ldc) = / += ap x bp over kc.
using Ukernel = void (*)(size_t kc, const float* ap, const float* bp, float* c, size_t ldc,
                         bool add, int rows, int cols);

// Packs rows [i0, i0 + mc) x k [p0, p0 + kc) of op(A) into ceil(mc / mr) panels.
// lda: row stride of A as stored (k when !trans, m when trans).
using PackA = void (*)(const float* a, size_t lda, bool trans, size_t i0, size_t mc, size_t p0,
                       size_t kc, float* dst);

// Packs k [p0, p0 + kc) x cols [j0, j0 + nc) of op(B) into ceil(nc / nr) panels.
// ldb: row stride of B as stored (n when !trans, k when trans).
using PackB = void (*)(const float* b, size_t ldb, bool trans, size_t p0, size_t kc, size_t j0,
                       size_t nc, float* dst);

// Few rows of out (small m) with op(B) = B: B is read where it lies, with no B panel, so a
// product whose B is far larger than its A and out does not copy B once more than it reads it.
// The mr x nr tile's B row p is at b + p * ldb (lanes past `cols` not read). Each out element
// takes the same operations in the same order as through the panels (a float32 FMA chain over
// the k block from zero, then added to out), so the results are the same bits. A transposed B is
// read in place only by small_m_transposed_b.h (one register of 16 out rows per B row), where it
// measured faster than its panels: 14 to 16 rows, B under the panel cache's floor (matmul.cc).
using DirectKernel = void (*)(size_t kc, const float* ap, const float* b, size_t ldb, float* c, size_t ldc, bool add, int rows, int cols);

struct Tile {
  int mr, nr;        // register tile
  size_t kc;         // k block: out tile loads / stores amortised over kc FMAs per element
  size_t mc;         // rows of A packed at once: mc x kc stays in L2
  size_t nc;         // cols of B packed at once: kc x nc stays in L3
  Ukernel kernel;
  PackA pack_a;
  PackB pack_b;
  // The small-m kernel (nullptr where the ISA has none: those products keep the panels).
  DirectKernel direct;
  // The same kernel asking for B's rows ahead of its k loop (software prefetch): for the first
  // tile of a column strip, which brings the strip of B in from memory; the strip's later tiles
  // find it in the caches and run `direct` (the same bits either way).
  DirectKernel direct_first;
};

const Tile& tile_for(Isa isa);

}  // namespace gemm
}  // namespace pleat
