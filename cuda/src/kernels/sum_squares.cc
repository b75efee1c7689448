// sum_squares (see sum_squares.h).
#include "sum_squares.h"

#include "thread_pool.h"

namespace pleat {

namespace {

template <typename T>
double lanes(const T* __restrict x, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) {
      const double v = static_cast<double>(x[i + j]);
      acc[j] += v * v;
    }
  }
  for (size_t j = 0; i + j < n; ++j) {
    const double v = static_cast<double>(x[i + j]);
    acc[j] += v * v;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

void sum_squares_each(const SquaresRun* runs, size_t count, double* out) {
  const auto one = [&](size_t i) {
    const SquaresRun& r = runs[i];
    out[i] = r.f64 ? lanes(static_cast<const double*>(r.data), r.n) : lanes(static_cast<const float*>(r.data), r.n);
  };
  const auto bytes_of = [&](size_t i) { return runs[i].n * (runs[i].f64 ? sizeof(double) : sizeof(float)); };
  size_t bytes = 0;
  for (size_t i = 0; i < count; ++i) bytes += bytes_of(i);
  if (count < 2 || pool_threads() == 1 || bytes < kPoolMinBytes) {
    for (size_t i = 0; i < count; ++i) one(i);
    return;
  }
  pool_run_largest_first(static_cast<unsigned>(count), bytes_of, [&](unsigned i) { one(i); });
}

}  // namespace pleat
