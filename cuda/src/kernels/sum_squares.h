// sum_squares: the sum of x[i]^2 in float64 in one fixed order, the same on every machine and
// thread count, and the same as the TypeScript reference (src/tensor/kernels/SumSquares.ts):
//
//   lane j (0..7) sums x[i]^2 for i = j, j + 8, j + 16, ... in increasing i
//   result = ((lane0 + lane1) + (lane2 + lane3)) + ((lane4 + lane5) + (lane6 + lane7))
//
// (no contraction: CMake builds with -ffp-contract=off). The eight lanes are independent, so
// the loop vectorises without reassociating anything. A non-finite element makes the sum
// non-finite (and so does a float64 square that overflows).
#pragma once

#include <cstddef>

namespace pleat {

// One array of sum_squares_each: n elements at data, float64 when f64, else float32.
struct SquaresRun {
  const void* data;
  size_t n;
  bool f64;
};

// out[i] = the sum of squares of runs[i], each in the order above (the same bits as one call
// each). The arrays are independent, so large sets spread over the kernels' pool, one array a
// task, the longest first; each array's own sum stays on one thread.
void sum_squares_each(const SquaresRun* runs, size_t count, double* out);

}  // namespace pleat
