// The sum of squares on a device (sum_squares_cuda.cu): the float64 sum of x[i]^2 over float32 x
// in a fixed block order that a GPU runs in parallel, compiled for the device and for the host
// (pleat_kernel_emulation's `sum_squares` runs `sum_squares_block_order` over the same functions,
// so the device's result is checked bit for bit against it, and it against the CPU's order):
//
//   chunk c holds x[c * 4096 .. c * 4096 + 4095]; its thread t (0..255) sums x[i]^2 for
//   i = c * 4096 + t + 256 j, j = 0..15 ascending, from 0.0
//   the 256 thread sums are combined by halving: s = 128, 64, ..., 1: sum[t] = sum[t] + sum[t + s]
//   partial[c] = sum[0]; then one block of 256 threads sums partial[t + 256 j] (j ascending) and
//   halves the same way: the result
//
// Each square and add is one IEEE operation rounded on its own (the device's _rn intrinsics, the
// host's operators without contraction). It is not SumSquares' order (eight lanes by index mod
// 8: sequential, the CPU's): the two agree to within the rounding of either sum (a relative
// error of about 2^-52 times log2 of the length for squares, all of one sign).
#pragma once

#include <cstddef>
#include <vector>

#include "ops_element.h"

namespace pleat {
namespace element {

constexpr unsigned kSumSquaresThreads = 256;
constexpr unsigned kSumSquaresPerThread = 16;
constexpr size_t kSumSquaresChunk = static_cast<size_t>(kSumSquaresThreads) * kSumSquaresPerThread;

// Thread t's sum of squares in chunk c of x[0, n).
PLEAT_HD inline double sum_squares_thread(const float* x, size_t n, size_t c, unsigned t) {
  double acc = 0.0;
  for (unsigned j = 0; j < kSumSquaresPerThread; ++j) {
    const size_t i = c * kSumSquaresChunk + t + static_cast<size_t>(kSumSquaresThreads) * j;
    if (i >= n) break;
    const double v = static_cast<double>(x[i]);
    acc = add(acc, mul(v, v));
  }
  return acc;
}

// Thread t's sum of partial[t + 256 j] over the `count` partials, j ascending.
PLEAT_HD inline double sum_partials_thread(const double* partial, size_t count, unsigned t) {
  double acc = 0.0;
  for (size_t i = t; i < count; i += kSumSquaresThreads) acc = add(acc, partial[i]);
  return acc;
}

// One step of the halving: sums[t] += sums[t + s] for t < s.
PLEAT_HD inline void sum_squares_halve(double* sums, unsigned t, unsigned s) { sums[t] = add(sums[t], sums[t + s]); }

#ifndef __CUDACC__
// The whole order on the host, one thread after another (pleat_kernel_emulation).
inline double halved(double* sums) {
  for (unsigned s = kSumSquaresThreads / 2; s > 0; s /= 2)
    for (unsigned t = 0; t < s; ++t) sum_squares_halve(sums, t, s);
  return sums[0];
}

inline double sum_squares_block_order(const float* x, size_t n) {
  const size_t chunks = (n + kSumSquaresChunk - 1) / kSumSquaresChunk;
  std::vector<double> partial(chunks);
  double sums[kSumSquaresThreads];
  for (size_t c = 0; c < chunks; ++c) {
    for (unsigned t = 0; t < kSumSquaresThreads; ++t) sums[t] = sum_squares_thread(x, n, c, t);
    partial[c] = halved(sums);
  }
  for (unsigned t = 0; t < kSumSquaresThreads; ++t) sums[t] = sum_partials_thread(partial.data(), chunks, t);
  return halved(sums);
}
#endif

}  // namespace element
}  // namespace pleat
