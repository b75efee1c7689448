// Internal to bf16_matmul.cc: the AVX512-BF16 register tile (packers + micro-kernel) of the bf16
// GEMM.
//
// VDPBF16PS multiplies pairs: lane i of the fp32 accumulator gets a[2i] * b[2i] + a[2i+1] * b[2i+1]
// from two vectors of 32 bf16. So the packed panels hold k in pairs, one 32-bit word per pair
// (the bf16 of the even k in the low half, of the odd k in the high half; a missing odd k, at the
// end of an odd k, is a bf16 zero):
//   A panel: mr rows x kp pairs, pair-major: ap[p * mr + r] = pair(op(A)[i0 + r, p0 + 2p, +1])
//   B panel: kp pairs x nr cols, pair-major: bp[p * nr + j] = pair(op(B)[p0 + 2p, +1, j0 + j])
// Both are zero-padded to full tiles, as in matmul_tile.h.
//
// Packing rounds each float32 to bf16 (nearest, ties to even; NaN stays NaN): exact for inputs
// that already hold bf16 values, which is what the bf16 forward passes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pleat {
namespace bf16gemm {

// out tile (rows x cols valid of the mr x nr tile at c, row stride ldc) = / += ap x bp over kp pairs.
using Ukernel = void (*)(size_t kp, const uint32_t* ap, const uint32_t* bp, float* c, size_t ldc,
                         bool add, int rows, int cols);

// Packs rows [i0, i0 + mc) x k [p0, p0 + kc) of op(A) into ceil(mc / mr) panels of
// ceil(kc / 2) pairs. lda: row stride of A as stored (k when !trans, m when trans).
using PackA = void (*)(const float* a, size_t lda, bool trans, size_t i0, size_t mc, size_t p0,
                       size_t kc, uint32_t* dst);

// Packs k [p0, p0 + kc) x cols [j0, j0 + nc) of op(B) into ceil(nc / nr) panels.
// ldb: row stride of B as stored (n when !trans, k when trans).
using PackB = void (*)(const float* b, size_t ldb, bool trans, size_t p0, size_t kc, size_t j0,
                       size_t nc, uint32_t* dst);

struct Tile {
  int mr, nr;   // register tile
  size_t kcp;   // k block, in pairs
  size_t mc;    // rows of A packed at once (L2)
  size_t nc;    // cols of B packed at once (L3)
  Ukernel kernel;
  PackA pack_a;
  PackB pack_b;
};

// The AVX512-BF16 tile. Call its kernel only when bf16_hardware() (bf16.h).
const Tile& tile();

}  // namespace bf16gemm
}  // namespace pleat
