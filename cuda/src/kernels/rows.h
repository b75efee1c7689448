// Row kernels on float32 matrices of `cols` columns, row-major, on host memory.
//
//   gather_rows:      out[i, :] = src[index[i], :]
//   scatter_add_rows: out[index[i], :] += src[i, :], in increasing i
//   softmax_rows:     out[r, :] = exp(x[r, :] - max) / sum, the sum in float64
//   rmsnorm_rows:     rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps) (float64 arithmetic),
//                     out[r, j] = x[r, j] * rstd[r] * weight[j]
//   swiglu:           out[i] = gate[i] * sigmoid(gate[i]) * up[i]
//
// Indices must be checked by the caller (first_bad_index) before any of these runs.
// scatter_add_rows is bit-identical to the sequential loop on every ISA and thread count: each
// output element receives its additions in increasing i, one float32 add each (threads own
// disjoint ranges of target rows and each walks i in order). Large calls are split across the
// pool (thread_pool.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_features.h"

namespace pleat {

// Position of the first index outside [0, bound), or -1 when all are inside.
ptrdiff_t first_bad_index(const int32_t* index, size_t n, size_t bound);

void gather_rows(Isa isa, const float* src, const int32_t* index, size_t n, float* out,
                 size_t cols);
// out has out_rows rows; every index is below out_rows.
void scatter_add_rows(Isa isa, const float* src, const int32_t* index, size_t n, float* out,
                      size_t out_rows, size_t cols);
void softmax_rows(Isa isa, const float* x, float* out, size_t rows, size_t cols);

// Exactly one of rstd32 / rstd64 is non-null (the binding accepts either array type).
void rmsnorm_rows(Isa isa, const float* x, const float* weight, float* out, float* rstd32,
                  double* rstd64, size_t rows, size_t cols, double eps);
void swiglu(Isa isa, const float* gate, const float* up, float* out, size_t n);
// The gradients of rmsnorm_rows (rmsnorm_backward.cc) from the forward's float64 rstd: dx and
// dw (float64, one per column) may each be null; the TypeScript loop's arithmetic, the same bits.
void rmsnorm_backward(const float* x, const float* w, const float* g, const double* rstd, size_t rows, size_t cols, float* dx, double* dw);
// The gradients of swiglu (swiglu_backward.cc): dgate and dup may each be null (not wanted).
void swiglu_backward(Isa isa, const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n);

// Scalar references (the Isa::Scalar paths), the specification of the vector versions.
// One row's copy (cols floats) with the ISA's vectors, streamed past the cache when `stream`
// (the caller then fences with _mm_sfence before anyone reads); isa is Avx512 or Avx2.
using RowFn = void (*)(float*, const float*, size_t);
RowFn copy_row_for(Isa isa, bool stream);

// Outputs at least this large are streamed past the cache (half the L3 of the machines this
// was tuned on; smaller outputs are likely read again soon, by the next kernel).
constexpr size_t kStreamBytes = size_t{16} << 20;

void gather_rows_ref(const float* src, const int32_t* index, size_t n, float* out, size_t cols);
void scatter_add_rows_ref(const float* src, const int32_t* index, size_t n, float* out,
                          size_t cols);
void softmax_rows_ref(const float* x, float* out, size_t rows, size_t cols);
void rmsnorm_rows_ref(const float* x, const float* weight, float* out, float* rstd32,
                      double* rstd64, size_t rows, size_t cols, double eps);
void swiglu_ref(const float* gate, const float* up, float* out, size_t n);
void swiglu_backward_ref(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n);

}  // namespace pleat
