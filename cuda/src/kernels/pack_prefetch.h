// pack_prefetch: how the A packers of the float32 and bf16 GEMMs (matmul_tile.cc,
// bf16_matmul_tile.cc) ask for A's rows ahead of reading them.
//
// A packer reads a run of kc floats (1 KB) of each of A's rows, lda apart: too short a stream for
// the hardware prefetchers to follow. With A in memory, the float32 packer stalled on its loads
// (~6 cycles a float: 6% of a 2048 x 2816 x 1024 product, 82% of its time on one load; issue 14,
// 2026-12-04, Zen 5). So while it copies a row it asks for the run of the row kPackARowsAhead
// further on (the next panel's); with A stored k x m (trans), for the k row that far ahead.
// Prefetches change no value: the packed panels are the same bits.
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace pleat {
namespace gemm {

constexpr size_t kPackARowsAhead = 8;

// Asks for the `floats` floats from `p` (64-byte lines), for a pack that reads them soon.
inline void prefetch_run(const float* p, size_t floats) {
  const char* from = reinterpret_cast<const char*>(p);
  const size_t bytes = floats * sizeof(float);
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(from + off, _MM_HINT_T0);
  _mm_prefetch(from + bytes - 1, _MM_HINT_T0);  // a run may straddle one more line
}

}  // namespace gemm
}  // namespace pleat
