// matmul (see matmul.h): Goto-style blocking around the register tiles of matmul_tile.cc.
//
//   for jc over n in nc blocks            B block kc x nc packed once, reused from L3 by every ic
//     for pc over k in kc blocks
//       pack B[pc.., jc..]
//       for ic over m in mc blocks         A block mc x kc packed, reused from L2 by every jr
//         pack A[ic.., pc..]
//         for jr over nc in nr, ir over mc in mr: micro-kernel (the B panel is reused by
//                                                 every ir from L1 / L2)
//
// Threads: the output is cut into disjoint slices (whole batch entries, or row / column ranges
// of one entry aligned to the tile), one per thread, each run by the single-thread algorithm
// with its own packing buffers. Packing is then repeated per slice (A or B twice for two
// threads), which costs O(mk + kn) against O(mnk / threads) of arithmetic: noise for the sizes
// that are split at all, and no barriers between threads.
#include "matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "matmul_tile.h"
#include "scratch.h"
#include "thread_pool.h"

namespace pleat {

namespace {

// Fewer multiply-adds than this run on one thread: waking a pool thread costs tens of
// microseconds (measured in bench/suites/tensor.ts), the time of a ~2^20-MAC product.
constexpr size_t kParallelMacs = size_t{1} << 20;

size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

// Splits [0, total) into `parts` blocks of equal size (all but the last), a multiple of `align`
// when possible; returns the block size.
size_t balanced_block(size_t total, size_t max_block, size_t align) {
  const size_t parts = div_up(total, max_block);
  const size_t block = div_up(total, parts);
  const size_t aligned = div_up(block, align) * align;
  return aligned <= max_block ? aligned : block;
}

// Per-thread packing buffers, kept between calls (pool workers and libuv threads live long).
thread_local Scratch<float> t_pack_a;
thread_local Scratch<float> t_pack_b;

struct Slice {
  size_t m0, m1, n0, n1;
};

// One batch entry, rows [m0, m1) and cols [n0, n1) of out, single-threaded.
bool gemm_slice(const gemm::Tile& t, const GemmArgs& g, const float* a, const float* b, float* c,
                const Slice& s) {
  const size_t lda = g.trans_a ? g.m : g.k;
  const size_t ldb = g.trans_b ? g.k : g.n;
  const size_t ldc = g.n;
  const size_t mr = static_cast<size_t>(t.mr), nr = static_cast<size_t>(t.nr);
  const size_t kc_max = balanced_block(g.k, t.kc, 1);
  const size_t mc_max = balanced_block(s.m1 - s.m0, t.mc, mr);
  const size_t nc_max = balanced_block(s.n1 - s.n0, t.nc, nr);
  // 64-byte aligned: the micro-kernels use aligned vector loads on the panels.
  float* pa = t_pack_a.get(div_up(mc_max, mr) * mr * kc_max);
  float* pb = t_pack_b.get(div_up(nc_max, nr) * nr * kc_max);
  if (pa == nullptr || pb == nullptr) return false;
  for (size_t jc = s.n0; jc < s.n1; jc += nc_max) {
    const size_t nc = std::min(nc_max, s.n1 - jc);
    for (size_t pc = 0; pc < g.k; pc += kc_max) {
      const size_t kc = std::min(kc_max, g.k - pc);
      t.pack_b(b, ldb, g.trans_b, pc, kc, jc, nc, pb);
      // The first k block overwrites out unless accumulating; later ones add their partial sums.
      const bool add = g.accumulate || pc > 0;
      for (size_t ic = s.m0; ic < s.m1; ic += mc_max) {
        const size_t mc = std::min(mc_max, s.m1 - ic);
        t.pack_a(a, lda, g.trans_a, ic, mc, pc, kc, pa);
        for (size_t jr = 0; jr < nc; jr += nr) {
          const int cols = static_cast<int>(std::min(nr, nc - jr));
          const float* bp = pb + jr * kc;
          for (size_t ir = 0; ir < mc; ir += mr) {
            const int rows = static_cast<int>(std::min(mr, mc - ir));
            t.kernel(kc, pa + ir * kc, bp, c + (ic + ir) * ldc + jc + jr, ldc, add, rows, cols);
          }
        }
      }
    }
  }
  return true;
}

// matmul_ref restricted to rows [m0, m1) of batch entry bi.
void ref_rows(const GemmArgs& g, size_t bi, size_t m0, size_t m1) {
  const float* a = g.a + bi * g.stride_a;
  const float* b = g.b + bi * g.stride_b;
  float* out = g.out + bi * g.m * g.n;
  for (size_t i = m0; i < m1; ++i) {
    float* row = out + i * g.n;
    if (!g.accumulate) std::fill(row, row + g.n, 0.0f);
    for (size_t kk = 0; kk < g.k; ++kk) {
      const float av = g.trans_a ? a[kk * g.m + i] : a[i * g.k + kk];
      if (g.trans_b) {
        for (size_t j = 0; j < g.n; ++j) row[j] += av * b[j * g.k + kk];
      } else {
        const float* brow = b + kk * g.n;
        for (size_t j = 0; j < g.n; ++j) row[j] += av * brow[j];
      }
    }
  }
}

}  // namespace

void matmul_ref(const GemmArgs& g) {
  for (size_t bi = 0; bi < g.batch; ++bi) ref_rows(g, bi, 0, g.m);
}

bool matmul(Isa isa, const GemmArgs& g) {
  if (g.batch == 0 || g.m == 0 || g.n == 0) return true;
  if (g.k == 0) {
    // An empty sum: out = 0, or unchanged when accumulating.
    if (!g.accumulate) std::memset(g.out, 0, g.batch * g.m * g.n * sizeof(float));
    return true;
  }
  const size_t macs = g.m * g.n * g.k;
  const bool small = macs < kSmallMacs;
  const gemm::Tile& t = gemm::tile_for(isa);

  unsigned threads = pool_threads();
  const size_t total = macs * g.batch;
  if (total < kParallelMacs) threads = 1;
  if (threads > 1 && total / threads < kParallelMacs / 2) {
    threads = static_cast<unsigned>(std::max<size_t>(1, total / (kParallelMacs / 2)));
  }

  // Work items: whole batch entries when they divide evenly among the threads (or are too small
  // to cut), otherwise every entry cut into `threads` slices along its larger dimension
  // (counted in tiles).
  const size_t slices = (threads == 1 || small || g.batch % threads == 0) ? 1 : threads;
  const size_t mtiles = div_up(g.m, static_cast<size_t>(t.mr));
  const size_t ntiles = div_up(g.n, static_cast<size_t>(t.nr));
  const bool cut_n = ntiles >= mtiles;
  const size_t items = g.batch * slices;

  std::vector<char> failed(threads, 0);
  const auto run_item = [&](size_t item) -> bool {
    const size_t bi = item / slices, si = item % slices;
    Slice s{0, g.m, 0, g.n};
    if (cut_n) {
      s.n0 = std::min(g.n, ntiles * si / slices * t.nr);
      s.n1 = std::min(g.n, ntiles * (si + 1) / slices * t.nr);
    } else {
      s.m0 = std::min(g.m, mtiles * si / slices * t.mr);
      s.m1 = std::min(g.m, mtiles * (si + 1) / slices * t.mr);
    }
    if (s.m0 >= s.m1 || s.n0 >= s.n1) return true;
    if (small) {
      ref_rows(g, bi, 0, g.m);  // never cut (slices == 1)
      return true;
    }
    return gemm_slice(t, g, g.a + bi * g.stride_a, g.b + bi * g.stride_b, g.out + bi * g.m * g.n, s);
  };
  pool_run(threads, [&](unsigned task) {
    const size_t first = items * task / threads, last = items * (task + 1) / threads;
    for (size_t item = first; item < last; ++item) {
      if (!run_item(item)) failed[task] = 1;
    }
  });
  return std::find(failed.begin(), failed.end(), 1) == failed.end();
}

}  // namespace pleat
