// The routing plan of the device timings (device_timing_binding.cc, moe_layer_timing.cc), made on
// the host from each routed slot's expert (`chosen` [T, k], token-major): the slots in
// expert-major order (a stable counting sort: `index` the token of each permuted row, `expert`
// its expert, `counts` rows per expert), and each token's permuted rows in increasing order as a
// CSR list (`offsets` [T + 1], `rows`), as combine_rows reads them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pleat {

struct RoutingPlan {
  std::vector<int32_t> index, expert, offsets, rows, counts;
};

inline RoutingPlan routing_plan(const std::vector<int32_t>& chosen, size_t t, size_t k, size_t e) {
  const size_t n = t * k;
  RoutingPlan p{std::vector<int32_t>(n), std::vector<int32_t>(n), std::vector<int32_t>(t + 1, 0), std::vector<int32_t>(n), std::vector<int32_t>(e, 0)};
  for (int32_t x : chosen) ++p.counts[static_cast<size_t>(x)];
  std::vector<int32_t> at(e, 0);
  for (size_t x = 1; x < e; ++x) at[x] = at[x - 1] + p.counts[x - 1];
  for (size_t r = 0; r < n; ++r) {
    const size_t slot = static_cast<size_t>(at[static_cast<size_t>(chosen[r])]++);
    p.index[slot] = static_cast<int32_t>(r / k);
    p.expert[slot] = chosen[r];
  }
  for (size_t r = 0; r < n; ++r) ++p.offsets[static_cast<size_t>(p.index[r]) + 1];
  for (size_t i = 0; i < t; ++i) p.offsets[i + 1] += p.offsets[i];
  std::vector<int32_t> next(p.offsets.begin(), p.offsets.end() - 1);
  for (size_t r = 0; r < n; ++r) p.rows[static_cast<size_t>(next[static_cast<size_t>(p.index[r])]++)] = static_cast<int32_t>(r);
  return p;
}

// Host values for the timings: a fixed linear congruential stream, uniform in [-scale / 2,
// scale / 2) (the same run, the same data).
class TimingRandom {
 public:
  float uniform(float scale) { return scale * (static_cast<float>((state_ = state_ * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f); }

 private:
  uint32_t state_ = 12345;
};

}  // namespace pleat
