// gemm_driver: the Goto-style blocking and the threading that matmul.cc (float32 panels) and
// bf16_matmul.cc (bf16 pairs) share around their register tiles.
//
//   for jc over n in nc blocks            B block kc x nc packed once, reused from L3 by every ic
//     for pc over k in kc blocks
//       pack B[pc.., jc..]
//       for ic over m in mc blocks         A block mc x kc packed, reused from L2 by every jr
//         pack A[ic.., pc..]
//         for jr over nc in nr, ir over mc in mr: micro-kernel
//
// A panel element holds `K` consecutive k values (1: one float; 2: a pair of bf16 in a 32-bit
// word), so the k blocks are whole units and the micro-kernel counts k in units.
//
// Threads: the output is cut into disjoint slices (whole batch entries, or row / column ranges
// of one entry aligned to the tile), one per task of the shared pool, each run by the
// single-thread algorithm with its own packing buffers. No element is computed by two threads
// and no barrier is needed, so results do not depend on the thread count; packing is repeated
// per slice, O(mk + kn) against O(mnk / threads) of arithmetic.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "matmul.h"
#include "scratch.h"
#include "thread_pool.h"
#include "tile_store.h"

namespace pleat {
namespace gemm_driver {

inline size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

// Splits [0, total) into equal blocks of at most max_block (all but the last), a multiple of
// `align` when possible; returns the block size.
inline size_t balanced_block(size_t total, size_t max_block, size_t align) {
  const size_t parts = div_up(total, max_block);
  const size_t block = div_up(total, parts);
  const size_t aligned = div_up(block, align) * align;
  return aligned <= max_block ? aligned : block;
}

// A k block this short gives a tile's own prefetch of its out rows (tile_store.h) no time to land
// before the tile adds into them: the weight gradient of an expert that got a few rows is
// [in, out] += x^T g over k = those rows, its accumulator read from memory tile by tile. Such
// loops ask for the out rows of the tile kOutAheadTiles further down the strip instead.
constexpr size_t kShortK = 16;
constexpr size_t kOutAheadTiles = 4;

struct Slice {
  size_t m0, m1, n0, n1;
};

// One batch entry, rows [m0, m1) and cols [n0, n1) of c, single-threaded, with B's panels from
// `b_panels(jc, nc, pc, kc)`: the panels of op(B)'s k block [pc, pc + kc) and columns [jc, jc +
// nc), jr-th panel at jr * ku, or null when they cannot be had. `Tile` has mr, nr, mc, nc, kernel
// and pack_a; `k_units` is its k block in panel units. Returns false when a packing buffer
// cannot be allocated.
template <typename Panel, size_t K, typename Tile, typename BPanels>
bool slice_with(const Tile& t, size_t k_units, Scratch<Panel>& pack_a, const GemmArgs& g, const float* a, float* c, const Slice& s,
                const BPanels& b_panels) {
  const size_t lda = g.trans_a ? g.m : g.k;
  const size_t ldc = g.n;
  const size_t mr = static_cast<size_t>(t.mr), nr = static_cast<size_t>(t.nr);
  // k blocks of whole units, so every block but the last holds a multiple of K values.
  const size_t kc_max = K * balanced_block(div_up(g.k, K), k_units, 1);
  const size_t ku_max = kc_max / K;
  const size_t mc_max = balanced_block(s.m1 - s.m0, t.mc, mr);
  const size_t nc_max = balanced_block(s.n1 - s.n0, t.nc, nr);
  // 64-byte aligned (Scratch): the micro-kernels use aligned vector loads on the panels.
  Panel* pa = pack_a.get(div_up(mc_max, mr) * mr * ku_max);
  if (pa == nullptr) return false;
  for (size_t jc = s.n0; jc < s.n1; jc += nc_max) {
    const size_t nc = std::min(nc_max, s.n1 - jc);
    for (size_t pc = 0; pc < g.k; pc += kc_max) {
      const size_t kc = std::min(kc_max, g.k - pc);
      const size_t ku = div_up(kc, K);
      const Panel* pb = b_panels(jc, nc, pc, kc);
      if (pb == nullptr) return false;
      // The first k block overwrites out unless accumulating; later ones add their partial sums.
      const bool add = g.accumulate || pc > 0;
      for (size_t ic = s.m0; ic < s.m1; ic += mc_max) {
        const size_t mc = std::min(mc_max, s.m1 - ic);
        t.pack_a(a, lda, g.trans_a, ic, mc, pc, kc, pa);
        const bool out_ahead = add && ku <= kShortK;
        for (size_t jr = 0; jr < nc; jr += nr) {
          const int cols = static_cast<int>(std::min(nr, nc - jr));
          const Panel* bp = pb + jr * ku;
          for (size_t ir = 0; ir < mc; ir += mr) {
            const int rows = static_cast<int>(std::min(mr, mc - ir));
            const size_t ahead = ir + kOutAheadTiles * mr;
            if (out_ahead && ahead < mc) prefetch_tile(c + (ic + ahead) * ldc + jc + jr, ldc, static_cast<int>(std::min(mr, mc - ahead)), cols * 4);
            t.kernel(ku, pa + ir * ku, bp, c + (ic + ir) * ldc + jc + jr, ldc, add, rows, cols);
          }
        }
      }
    }
  }
  return true;
}

// slice_with B packed here, a block at a time, by the tile's pack_b.
template <typename Panel, size_t K, typename Tile>
bool slice(const Tile& t, size_t k_units, Scratch<Panel>& pack_a, Scratch<Panel>& pack_b, const GemmArgs& g,
           const float* a, const float* b, float* c, const Slice& s) {
  const size_t ldb = g.trans_b ? g.k : g.n;
  const size_t nr = static_cast<size_t>(t.nr);
  const size_t ku_max = balanced_block(div_up(g.k, K), k_units, 1);
  const size_t nc_max = balanced_block(s.n1 - s.n0, t.nc, nr);
  Panel* pb = pack_b.get(div_up(nc_max, nr) * nr * ku_max);
  if (pb == nullptr) return false;
  return slice_with<Panel, K>(t, k_units, pack_a, g, a, c, s, [&](size_t jc, size_t nc, size_t pc, size_t kc) -> const Panel* {
    t.pack_b(b, ldb, g.trans_b, pc, kc, jc, nc, pb);
    return pb;
  });
}

// Runs `run(batch_entry, slice)` over the output cut for the pool: fewer than `parallel_macs`
// multiply-adds run on one thread; work items are whole batch entries when they divide evenly
// among the threads (or when `whole_entries`), otherwise every entry cut into `threads` slices
// along its larger dimension, counted in mr x nr tiles. False when any run returned false.
template <typename Run>
bool run_sliced(const GemmArgs& g, size_t mr, size_t nr, size_t parallel_macs, bool whole_entries, const Run& run) {
  unsigned threads = pool_threads();
  const size_t total = g.m * g.n * g.k * g.batch;
  if (total < parallel_macs) threads = 1;
  if (threads > 1 && total / threads < parallel_macs / 2) {
    threads = static_cast<unsigned>(std::max<size_t>(1, total / (parallel_macs / 2)));
  }
  const size_t slices = (threads == 1 || whole_entries || g.batch % threads == 0) ? 1 : threads;
  const size_t mtiles = div_up(g.m, mr);
  const size_t ntiles = div_up(g.n, nr);
  const bool cut_n = ntiles >= mtiles;
  const size_t items = g.batch * slices;
  std::vector<char> failed(threads, 0);
  const auto run_item = [&](size_t item) -> bool {
    const size_t bi = item / slices, si = item % slices;
    Slice s{0, g.m, 0, g.n};
    if (cut_n) {
      s.n0 = std::min(g.n, ntiles * si / slices * nr);
      s.n1 = std::min(g.n, ntiles * (si + 1) / slices * nr);
    } else {
      s.m0 = std::min(g.m, mtiles * si / slices * mr);
      s.m1 = std::min(g.m, mtiles * (si + 1) / slices * mr);
    }
    if (s.m0 >= s.m1 || s.n0 >= s.n1) return true;
    return run(bi, s);
  };
  pool_run(threads, [&](unsigned task) {
    const size_t first = items * task / threads, last = items * (task + 1) / threads;
    for (size_t item = first; item < last; ++item) {
      if (!run_item(item)) failed[task] = 1;
    }
  });
  return std::find(failed.begin(), failed.end(), 1) == failed.end();
}

}  // namespace gemm_driver
}  // namespace pleat
