// Cross-entropy kernels (cross_entropy.h).
#include "cross_entropy.h"

#include <cmath>
#include <limits>

#include "thread_pool.h"

namespace pleat {
namespace {

// Math.max of two doubles: NaN if either is NaN, and +0 above -0.
inline double js_max(double m, double v) {
  if (std::isnan(m) || std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
  if (v > m) return v;
  if (v == m && v == 0.0 && std::signbit(m) && !std::signbit(v)) return v;
  return m;
}

}  // namespace

void ce_row_max(const float* x, size_t rows, size_t cols, double* max) {
  pool_for(rows, rows * cols * sizeof(float), [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      double m = -std::numeric_limits<double>::infinity();
      const float* row = x + r * cols;
      for (size_t j = 0; j < cols; ++j) m = js_max(m, row[j]);
      max[r] = m;
    }
  });
}

void ce_row_sum_exp(const float* x, size_t rows, size_t cols, const double* max, double* sum) {
  pool_for(rows, 8 * rows * cols * sizeof(float), [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      double s = 0;
      const float* row = x + r * cols;
      const double m = max[r];
      for (size_t j = 0; j < cols; ++j) s += std::exp(static_cast<double>(row[j]) - m);
      sum[r] = s;
    }
  });
}

void ce_grad(const float* x, size_t rows, size_t cols, const double* log_sum, const int32_t* targets, int32_t ignore, int64_t start,
             double scale, float* d) {
  pool_for(rows, 8 * rows * cols * sizeof(float), [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      float* out = d + r * cols;
      const int32_t t = targets[r];
      if (t == ignore) {
        for (size_t j = 0; j < cols; ++j) out[j] = 0.0f;
        continue;
      }
      const float* row = x + r * cols;
      const double ls = log_sum[r];
      for (size_t j = 0; j < cols; ++j) {
        const double p = std::exp(static_cast<double>(row[j]) - ls);
        out[j] = static_cast<float>(scale * (p - (start + static_cast<int64_t>(j) == t ? 1.0 : 0.0)));
      }
    }
  });
}

}  // namespace pleat
