// matmul (see matmul.h): the blocking and threading of gemm_driver.h around the register tiles
// of matmul_tile.cc (float32 panels), and matmul_ref for problems too small to pack.
#include "matmul.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "gemm_driver.h"
#include "matmul_tile.h"
#include "packed_b_cache.h"
#include "small_m_transposed_b.h"

namespace pleat {

namespace {

// Fewer multiply-adds than this run on one thread: waking a pool thread costs 25 us back to back
// and up to ~200 us after an idle moment (thread_pool.cc), the time of a 2^20..2^23-MAC product.
// In training, where other work runs between products, a [16, 256] x [256, 256] product (2^20)
// took 70 us on two threads against 26 us on one (2026-12-01, 2-vCPU VM), so the pool starts at 2^22.
constexpr size_t kParallelMacs = size_t{1} << 22;

// Per-thread packing buffers, kept between calls (pool workers and libuv threads live long).
thread_local Scratch<float> t_pack_a;
thread_local Scratch<float> t_pack_b;

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

// Products with at most this many rows of out and an untransposed B read B in place on ISAs
// that have the small-m kernel (matmul_tile.h): there the B panel would be reused by a few
// register tiles only, so packing it (reading and writing all of B once more) cost more than it
// saved: [m, 1024] x [1024, 1024] on two Zen 4 threads, m = 2, 4, 8, 16: 168, 70, 142, 204 us
// against 239, 120, 177, 225 packed; even at m = 32.
constexpr size_t kDirectRows = 24;

// Rows [m0, m1) x cols [n0, n1) of one batch entry through the small-m kernel: the k blocks and
// their order per element as gemm_driver::slice runs them, only B is not packed.
bool direct_slice(const gemm::Tile& t, const GemmArgs& g, const float* a, const float* b, float* c, const gemm_driver::Slice& s) {
  const size_t lda = g.trans_a ? g.m : g.k;
  const size_t ldb = g.n;
  const size_t ldc = g.n;
  const size_t kc_max = gemm_driver::balanced_block(g.k, t.kc, 1);
  const size_t mr = static_cast<size_t>(t.mr), nr = static_cast<size_t>(t.nr);
  const size_t mc = s.m1 - s.m0;
  float* pa = t_pack_a.get(gemm_driver::div_up(mc, mr) * mr * kc_max);
  if (pa == nullptr) return false;
  for (size_t pc = 0; pc < g.k; pc += kc_max) {
    const size_t kc = std::min(kc_max, g.k - pc);
    const bool add = g.accumulate || pc > 0;
    t.pack_a(a, lda, g.trans_a, s.m0, mc, pc, kc, pa);
    for (size_t jr = s.n0; jr < s.n1; jr += nr) {
      const int cols = static_cast<int>(std::min(nr, s.n1 - jr));
      for (size_t ir = 0; ir < mc; ir += mr) {
        const int rows = static_cast<int>(std::min(mr, mc - ir));
        const gemm::DirectKernel kernel = ir == 0 ? t.direct_first : t.direct;
        kernel(kc, pa + ir * kc, b + pc * ldb + jr, ldb, c + (s.m0 + ir) * ldc + jr, ldc, add, rows, cols);
      }
    }
  }
  return true;
}

// Rows [m0, m1) x cols [n0, n1) of one batch entry with B's panels from the cache
// (packed_b_cache.h): gemm_driver's loops and blocks, B packed once per generation.
bool cached_slice(const gemm::Tile& t, const gemm::PackedB& pb, const GemmArgs& g, const float* a, float* c, const gemm_driver::Slice& s) {
  const size_t nr = static_cast<size_t>(t.nr);
  return gemm_driver::slice_with<float, 1>(t, t.kc, t_pack_a, g, a, c, s,
                                           [&](size_t jc, size_t, size_t pc, size_t kc) { return pb.block(pc, kc, jc, nr); });
}

// B operands smaller than this (1 MiB) are packed per product: they stay in the caches between
// products, so packing them costs little, and the default model at hidden 256 (256 KiB weights)
// ran 2-14% slower with their panels kept (three interleaved pairs).
constexpr size_t kCachedMinFloats = size_t{1} << 18;

// Rows of out for which a transposed B below kCachedMinFloats is read in place
// (small_m_transposed_b.h) rather than transposed into panels: one register holds 16 rows, so
// fewer leave lanes idle. One thread, Zen 4 (2026-12-06, three interleaved runs, us): [16, 256] x
// [256, 256]^T 25 against 30 through the panels, [16, 512] x [512, 256]^T 49 against 59, [16, 1024]
// x [32, 1024]^T 24 against 54; but 12 rows 25 against 23 and 9-10 rows 24-27 against 22.
constexpr size_t kTransposedMinRows = 14;
constexpr size_t kTransposedMaxRows = 16;

// Up to this many columns of out, any row count up to kTransposedMaxRows reads a small
// transposed B in place: a panel is 64 columns wide, so a narrower B fills half of it or less
// with zeros the micro-kernel multiplies. The experts' dx of the default model (g W_down^T:
// [~4 rows, 256] x [32, 256]^T per expert, 8 experts a call; 2026-12-07, Zen 4, two interleaved
// runs): 27 us against 39-40 with the weights in cache, 63-67 against 80-88 from memory.
constexpr size_t kTransposedNarrowCols = 32;

}  // namespace

void matmul_ref(const GemmArgs& g) {
  for (size_t bi = 0; bi < g.batch; ++bi) ref_rows(g, bi, 0, g.m);
}

namespace {

bool run(Isa isa, const GemmArgs& g, size_t parallel_macs) {
  if (g.batch == 0 || g.m == 0 || g.n == 0) return true;
  if (g.k == 0) {
    // An empty sum: out = 0, or unchanged when accumulating.
    if (!g.accumulate) std::memset(g.out, 0, g.batch * g.m * g.n * sizeof(float));
    return true;
  }
  const bool small = g.m * g.n * g.k < kSmallMacs;
  const gemm::Tile& t = gemm::tile_for(isa);
  // A B the caller keeps unchanged within a generation: its panels from the cache.
  std::shared_ptr<const gemm::PackedB> cached;
  if (g.generation != 0 && !small && (g.batch == 1 || g.stride_b == 0) && g.k * g.n >= kCachedMinFloats) {
    cached = gemm::packed_b(t, g, gemm_driver::balanced_block(g.k, t.kc, 1), g.generation);
  }
  const bool direct = cached == nullptr && !small && t.direct != nullptr && !g.trans_b && g.m <= kDirectRows;
  // 14 to 16 rows (or up to 16 rows of at most 32 columns) with a transposed B below the cache's
  // floor (x W^T of a small weight), on AVX-512: B read in place, op(A)'s rows transposed
  // instead (small_m_transposed_b.h).
  const bool direct_transposed = cached == nullptr && !small && isa == Isa::Avx512 && g.trans_b &&
                                 (g.m >= kTransposedMinRows || g.n <= kTransposedNarrowCols) && g.m <= kTransposedMaxRows &&
                                 g.k * g.n < kCachedMinFloats;
  return gemm_driver::run_sliced(g, t.mr, t.nr, parallel_macs, small, [&](size_t bi, const gemm_driver::Slice& s) {
    if (small) {
      ref_rows(g, bi, 0, g.m);  // never cut (whole entries)
      return true;
    }
    if (cached != nullptr) return cached_slice(t, *cached, g, g.a + bi * g.stride_a, g.out + bi * g.m * g.n, s);
    if (direct) return direct_slice(t, g, g.a + bi * g.stride_a, g.b + bi * g.stride_b, g.out + bi * g.m * g.n, s);
    if (direct_transposed)
      return gemm::small_m_transposed_b(g, t.kc, g.a + bi * g.stride_a, g.b + bi * g.stride_b, g.out + bi * g.m * g.n, s.m0, s.m1, s.n0, s.n1);
    return gemm_driver::slice<float, 1>(t, t.kc, t_pack_a, t_pack_b, g, g.a + bi * g.stride_a, g.b + bi * g.stride_b,
                                        g.out + bi * g.m * g.n, s);
  });
}

}  // namespace

bool matmul(Isa isa, const GemmArgs& g) { return run(isa, g, kParallelMacs); }

// Never from the cache: a miss packs on the pool, and callers of this run on it already.
bool matmul_one_thread(Isa isa, const GemmArgs& g) {
  GemmArgs one = g;
  one.generation = 0;
  return run(isa, one, SIZE_MAX);
}

}  // namespace pleat
