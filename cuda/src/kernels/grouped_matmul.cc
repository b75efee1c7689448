// grouped_matmul (see grouped_matmul.h).
#include "grouped_matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "matmul.h"
#include "thread_pool.h"

namespace pleat {

namespace {

// The same threshold as matmul's pool (matmul.cc): less work than this stays on one thread.
constexpr size_t kParallelMacs = size_t{1} << 22;

// Products of few rows are bound by reading each group's weight, not by their MACs: a call
// whose groups hold at least this many bytes of weight spreads its groups over the pool even
// below kParallelMacs. Measured on a 2-vCPU Zen 5 VM, 8 experts of hidden 1024 and width 32
// with 32 rows in all (the default model at hidden 1024): b[8, 32, 1024]^T 226 -> 114 us,
// b[8, 1024, 64]^T 138 -> 64 us, b[8, 1024, 64] 59 -> 48 us, b[8, 32, 1024] 60 -> 35 us.
constexpr size_t kParallelWeightBytes = size_t{1} << 19;

// Group g's product, as the GemmArgs matmul would get for it alone.
GemmArgs rows_product(const GroupedArgs& g, size_t group, size_t first_row) {
  const size_t r = static_cast<size_t>(g.rows[group]);
  return GemmArgs{g.a + first_row * g.k, g.b + group * g.k * g.n, g.out + first_row * g.n, 1, r, g.n, g.k,
                  false, g.trans_b, 0, 0, false};
}

GemmArgs weights_product(const GroupedArgs& g, size_t group, size_t first_row) {
  const size_t r = static_cast<size_t>(g.rows[group]);
  return GemmArgs{g.a + first_row * g.m, g.b + first_row * g.n, g.out + group * g.m * g.n, 1, g.m, g.n, r,
                  true, false, 0, 0, g.accumulate};
}

// Runs `product(g, group, first_row)` for every group: on this thread when the total is small,
// one group per pool task when no group holds more than a thread's share, else each product on
// the whole pool.
template <typename Product>
bool run_groups(const GroupedArgs& g, size_t macs_per_row, size_t weight_floats, Product product) {
  std::vector<size_t> first(g.groups);
  size_t total_rows = 0, largest = 0;
  for (size_t e = 0; e < g.groups; ++e) {
    first[e] = total_rows;
    const size_t r = static_cast<size_t>(g.rows[e]);
    total_rows += r;
    largest = std::max(largest, r);
  }
  const size_t total = total_rows * macs_per_row;
  const unsigned threads = pool_threads();
  const bool weight_bound = g.groups >= threads && g.groups * weight_floats * sizeof(float) >= kParallelWeightBytes;
  if ((total < kParallelMacs && !weight_bound) || threads == 1) {
    bool ok = true;
    for (size_t e = 0; e < g.groups; ++e) ok = product(e, first[e], false) && ok;
    return ok;
  }
  // No group above ~1.25 threads' shares, or every group's time its weight's read: tasks of
  // whole groups keep every thread busy, the largest first (pool_run_largest_first). Each
  // group's product is the same whichever thread runs it, so the order changes no bits.
  if ((total < kParallelMacs || 4 * largest * macs_per_row * threads <= 5 * total) && g.groups >= threads) {
    std::atomic<bool> ok{true};
    pool_run_largest_first(
        static_cast<unsigned>(g.groups), [&](unsigned e) { return static_cast<size_t>(g.rows[e]); },
        [&](unsigned e) {
          if (!product(e, first[e], false)) ok = false;
        });
    return ok;
  }
  bool ok = true;
  for (size_t e = 0; e < g.groups; ++e) ok = product(e, first[e], true) && ok;
  return ok;
}

}  // namespace

bool grouped_rows(Isa isa, const GroupedArgs& g) {
  return run_groups(g, g.n * g.k, g.n * g.k, [&](size_t e, size_t first_row, bool pooled) {
    const GemmArgs p = rows_product(g, e, first_row);
    return pooled ? matmul(isa, p) : matmul_one_thread(isa, p);
  });
}

bool grouped_weights(Isa isa, const GroupedArgs& g) {
  return run_groups(g, g.m * g.n, g.m * g.n, [&](size_t e, size_t first_row, bool pooled) {
    if (g.rows[e] == 0) {
      if (!g.accumulate) std::memset(g.out + e * g.m * g.n, 0, g.m * g.n * sizeof(float));
      return true;
    }
    const GemmArgs p = weights_product(g, e, first_row);
    return pooled ? matmul(isa, p) : matmul_one_thread(isa, p);
  });
}

}  // namespace pleat
