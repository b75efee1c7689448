// bf16_matmul (see bf16_matmul.h): the Goto-style blocking of matmul.cc around the AVX512-BF16
// tile of bf16_matmul_tile.cc, with k counted in pairs.
//
//   for jc over n in nc blocks, pc over k in kc blocks (kc even), pack B[pc.., jc..]
//     for ic over m in mc blocks, pack A[ic.., pc..]
//       for jr over nc in nr, ir over mc in mr: micro-kernel
//
// Threads as in matmul.cc: the output is cut into disjoint slices (whole batch entries, or row /
// column ranges of one entry aligned to the tile), one per task of the shared pool, each with
// its own packing buffers, so no element is computed by two threads and results do not depend
// on the thread count.
#include "bf16_matmul.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bf16_matmul_tile.h"
#include "scratch.h"
#include "thread_pool.h"

namespace pleat {

namespace {

// Multiply-adds below which one thread runs the product (matmul.cc's threshold, doubled: the
// bf16 kernel does a multiply-add in half the time, so a pool wake-up is worth twice as many;
// reasoned from matmul.cc's measurement, not measured for this kernel).
constexpr size_t kParallelMacs = size_t{1} << 21;

size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

// [0, total) in equal blocks of at most max_block, a multiple of align when possible.
size_t balanced_block(size_t total, size_t max_block, size_t align) {
  const size_t parts = div_up(total, max_block);
  const size_t block = div_up(total, parts);
  const size_t aligned = div_up(block, align) * align;
  return aligned <= max_block ? aligned : block;
}

thread_local Scratch<uint32_t> t_pack_a;
thread_local Scratch<uint32_t> t_pack_b;

struct Slice {
  size_t m0, m1, n0, n1;
};

// One batch entry, rows [m0, m1) and cols [n0, n1) of out, single-threaded.
bool gemm_slice(const bf16gemm::Tile& t, const GemmArgs& g, const float* a, const float* b, float* c,
                const Slice& s) {
  const size_t lda = g.trans_a ? g.m : g.k;
  const size_t ldb = g.trans_b ? g.k : g.n;
  const size_t ldc = g.n;
  const size_t mr = static_cast<size_t>(t.mr), nr = static_cast<size_t>(t.nr);
  // k blocks in whole pairs, so every block but the last has an even length.
  const size_t kc_max = 2 * balanced_block(div_up(g.k, 2), t.kcp, 1);
  const size_t kp_max = kc_max / 2;
  const size_t mc_max = balanced_block(s.m1 - s.m0, t.mc, mr);
  const size_t nc_max = balanced_block(s.n1 - s.n0, t.nc, nr);
  uint32_t* pa = t_pack_a.get(div_up(mc_max, mr) * mr * kp_max);
  uint32_t* pb = t_pack_b.get(div_up(nc_max, nr) * nr * kp_max);
  if (pa == nullptr || pb == nullptr) return false;
  for (size_t jc = s.n0; jc < s.n1; jc += nc_max) {
    const size_t nc = std::min(nc_max, s.n1 - jc);
    for (size_t pc = 0; pc < g.k; pc += kc_max) {
      const size_t kc = std::min(kc_max, g.k - pc);
      const size_t kp = div_up(kc, 2);
      t.pack_b(b, ldb, g.trans_b, pc, kc, jc, nc, pb);
      const bool add = g.accumulate || pc > 0;
      for (size_t ic = s.m0; ic < s.m1; ic += mc_max) {
        const size_t mc = std::min(mc_max, s.m1 - ic);
        t.pack_a(a, lda, g.trans_a, ic, mc, pc, kc, pa);
        for (size_t jr = 0; jr < nc; jr += nr) {
          const int cols = static_cast<int>(std::min(nr, nc - jr));
          const uint32_t* bp = pb + jr * kp;
          for (size_t ir = 0; ir < mc; ir += mr) {
            const int rows = static_cast<int>(std::min(mr, mc - ir));
            t.kernel(kp, pa + ir * kp, bp, c + (ic + ir) * ldc + jc + jr, ldc, add, rows, cols);
          }
        }
      }
    }
  }
  return true;
}

}  // namespace

bool matmul_bf16(const GemmArgs& g) {
  if (g.batch == 0 || g.m == 0 || g.n == 0) return true;
  if (g.k == 0) {
    if (!g.accumulate) std::memset(g.out, 0, g.batch * g.m * g.n * sizeof(float));
    return true;
  }
  const bf16gemm::Tile& t = bf16gemm::tile();
  const size_t macs = g.m * g.n * g.k;
  unsigned threads = pool_threads();
  const size_t total = macs * g.batch;
  if (total < kParallelMacs) threads = 1;
  if (threads > 1 && total / threads < kParallelMacs / 2) {
    threads = static_cast<unsigned>(std::max<size_t>(1, total / (kParallelMacs / 2)));
  }
  // Whole batch entries when they divide evenly among the threads, else every entry cut into
  // `threads` slices along its larger dimension (in tiles).
  const size_t slices = (threads == 1 || g.batch % threads == 0) ? 1 : threads;
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
