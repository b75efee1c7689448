// normals (see normals.h): mulberry32 + Box-Muller over a range of the stream, on the pool.
#include "normals.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "thread_pool.h"

namespace pleat {

namespace {

// mulberry32's step constant: the k-th state is seed + k * kStep (mod 2^32).
constexpr uint32_t kStep = 0x6d2b79f5u;

// The k-th uniform in (0, 1): the integer steps of the TypeScript uniformAt (its Math.imul and
// >>> wrap mod 2^32 as uint32 arithmetic does), then (x + 0.5) / 2^32, exact in double.
inline double uniform_at(uint32_t seed, uint64_t k) {
  uint32_t t = seed + static_cast<uint32_t>(k) * kStep;
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return (static_cast<double>(t ^ (t >> 14)) + 0.5) / 4294967296.0;
}

// Whether every double within a relative `margin` of v rounds to the same float as v (rounding
// is monotonic, so the two ends decide).
inline bool decided(double v, double margin) {
  const float f = static_cast<float>(v);
  const double d = std::fabs(v) * margin;
  return static_cast<float>(v - d) == f && static_cast<float>(v + d) == f;
}

}  // namespace

std::vector<size_t> normals_f32(uint32_t seed, uint64_t first, size_t count, double std_dev, float* out, int margin_log2) {
  std::vector<size_t> undecided;
  if (count == 0) return undecided;
  const double margin = std::ldexp(1.0, -margin_log2);
  const double two_pi = 2 * M_PI;
  std::mutex lock;
  // ~20 ns an element (a log, a cos and a sin a pair): worth a second thread from ~16k elements.
  pool_for(count, count * 64, [&](size_t begin, size_t end) {
    std::vector<size_t> mine;
    for (size_t j = begin; j < end;) {
      const uint64_t i = first + j;
      const uint64_t pair = i / 2;
      const double r = std::sqrt(-2 * std::log(uniform_at(seed, 2 * pair + 1)));
      const double a = two_pi * uniform_at(seed, 2 * pair + 2);
      // (r * cos(a)) * std, left to right as the reference.
      if (i % 2 == 0) {
        const double v = r * std::cos(a) * std_dev;
        out[j] = static_cast<float>(v);
        if (!decided(v, margin)) mine.push_back(j);
        ++j;
        if (j == end) break;
      }
      const double w = r * std::sin(a) * std_dev;
      out[j] = static_cast<float>(w);
      if (!decided(w, margin)) mine.push_back(j);
      ++j;
    }
    if (!mine.empty()) {
      std::lock_guard<std::mutex> guard(lock);
      undecided.insert(undecided.end(), mine.begin(), mine.end());
    }
  });
  std::sort(undecided.begin(), undecided.end());
  return undecided;
}

}  // namespace pleat
