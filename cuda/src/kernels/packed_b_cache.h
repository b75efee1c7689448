// packed_b_cache: B operands (weights) packed into matmul panels once per generation, instead of
// once per product.
//
// A training step multiplies each weight by every micro-batch's activations, forward (x W) and
// backward (g W^T), while the weight stays the same until the optimizer writes it. A caller that
// guarantees that B's memory does not change within a generation (src/tensor/StableWeights.ts:
// a parameter leaf of one rank's step) passes that generation with the product; the product
// then reads B's panels from this cache, packed on the generation's first use, rather than
// packing B itself (or, with few rows of out, reading B where it lies: rows a matrix row apart,
// which the hardware prefetchers do not follow, ~9 GB/s against ~25 GB/s streamed on a 2-vCPU
// Zen 4 VM). The panels are the bytes pack_b would write, so the results are the same bits.
//
// Entries are keyed by B's address, shape, transposition, the tile and the k blocking; an entry
// of another generation is rebuilt. Generations come from next_generation() (process-wide, never
// reused), so memory freed and reused by a later run never matches an old entry. The cache holds
// at most kPackedBBytes for every rank of the process together (the local and threads backends
// run all ranks in one); past that, entries of retired generations are dropped, and a product
// that still does not fit packs B itself (the same bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "matmul.h"
#include "matmul_tile.h"

namespace pleat {
namespace gemm {

// The most bytes of panels the cache holds (over every entry).
constexpr size_t kPackedBBytes = size_t{2} << 30;

// A packed B: for each k block q (of kc_max, the last shorter), the ceil(n / nr) panels of
// op(B)[q * kc_max .., all n], each kc x nr (kc the block's size), block after block.
struct PackedB {
  float* data = nullptr;
  size_t bytes = 0;
  size_t kc_max = 0;
  size_t panels = 0;  // ceil(n / nr)
  PackedB() = default;
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;
  ~PackedB();
  // The first panel of the k block starting at pc, and of columns from j0 (a multiple of nr).
  const float* block(size_t pc, size_t kc, size_t j0, size_t nr) const {
    return data + pc * panels * nr + (j0 / nr) * nr * kc;
  }
};

// The panels of op(B) of batch entry 0 (g.stride_b must be 0 or g.batch 1) for tile `t` with k
// blocks of kc_max, under `generation` (> 0); nullptr when the cache is full or memory ran out.
std::shared_ptr<const PackedB> packed_b(const Tile& t, const GemmArgs& g, size_t kc_max, uint64_t generation);

// A generation no caller has had (from 1 up).
uint64_t next_generation();

// The step of `generation` ended: its entries may be dropped when the cache needs room (until
// then they keep their memory, which the next generation's panels of the same B reuse). Entries
// of generations not retired are never dropped for room: several ranks' steps share a process.
void retire_generation(uint64_t generation);

// Drops every entry (the memory is freed when no product still reads it); a build under way
// keeps its panels out of the cache.
void clear_packed_b();

// Entries and bytes held (for tests and `pleat doctor`-style reports).
struct PackedBStats {
  size_t entries, bytes, builds, hits;
};
PackedBStats packed_b_stats();

}  // namespace gemm
}  // namespace pleat
