// Cross-entropy kernels over rows of float32 logits (the vocabulary-parallel loss of
// src/attention/VocabParallel.ts): everything in float64, in the TypeScript loops' order, with
// std::exp where they call Math.exp (the two may differ in a double's last bit).
//
//   ce_row_max:     max[r] = the largest x[r, j] (NaN if any is NaN; -inf for an empty row)
//   ce_row_sum_exp: sum[r] = the sum over j ascending of exp(x[r, j] - max[r])
//   ce_grad:        d[r, j] = scale * (exp(x[r, j] - log_sum[r]) - [start + j == targets[r]]),
//                   rounded to float32; rows whose target is `ignore` get zeros
// Rows split over the kernel pool; each row is computed by one thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pleat {

void ce_row_max(const float* x, size_t rows, size_t cols, double* max);
void ce_row_sum_exp(const float* x, size_t rows, size_t cols, const double* max, double* sum);
void ce_grad(const float* x, size_t rows, size_t cols, const double* log_sum, const int32_t* targets, int32_t ignore, int64_t start,
             double scale, float* d);

}  // namespace pleat
