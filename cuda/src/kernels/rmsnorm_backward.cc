// rmsnorm_backward (see rows.h): the gradients of out = x * rstd * w over rows of `cols`, given
// the forward's float64 rstd and the output gradient g:
//   dot_r = sum_j g[r,j] * w[j] * x[r,j]        c_r = rstd_r^2 * dot_r / cols
//   dx[r,j] = rstd_r * (g[r,j] * w[j] - x[r,j] * c_r)          (rounded to float32)
//   dw[j] = sum over rows r ascending of g[r,j] * x[r,j] * rstd_r   (float64)
// in float64, in the TypeScript loop's order and association (src/tensor/ops/Norm.ts), so the
// results are the same bits (the file is built without FMA contraction). dx splits rows over the
// kernel pool, dw splits columns (each column's sum still runs over the rows in order).
#include "rows.h"
#include "thread_pool.h"

namespace pleat {

void rmsnorm_backward(const float* x, const float* w, const float* g, const double* rstd, size_t rows, size_t cols, float* dx, double* dw) {
  if (dx != nullptr) {
    pool_for(rows, 3 * rows * cols * sizeof(float), [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r) {
        const float* xr = x + r * cols;
        const float* gr = g + r * cols;
        const double s = rstd[r];
        double dot = 0;
        for (size_t j = 0; j < cols; ++j) dot += static_cast<double>(gr[j]) * static_cast<double>(w[j]) * static_cast<double>(xr[j]);
        const double c = (s * s * dot) / static_cast<double>(cols);
        for (size_t j = 0; j < cols; ++j) {
          dx[r * cols + j] = static_cast<float>(s * (static_cast<double>(gr[j]) * static_cast<double>(w[j]) - static_cast<double>(xr[j]) * c));
        }
      }
    });
  }
  if (dw != nullptr) {
    pool_for(cols, 2 * rows * cols * sizeof(float), [&](size_t j0, size_t j1) {
      for (size_t j = j0; j < j1; ++j) dw[j] = 0;
      for (size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        const float* gr = g + r * cols;
        const double s = rstd[r];
        for (size_t j = j0; j < j1; ++j) dw[j] = dw[j] + static_cast<double>(gr[j]) * static_cast<double>(xr[j]) * s;
      }
    });
  }
}

}  // namespace pleat
