// small_m_transposed_b: out (+)= op(A) B^T for few rows of out, B stored n x k read where it lies.
//
// The forward product of a linear layer whose weight is stored [out, in] (x W^T) with a micro-batch
// of a few rows: through the panels, B would be transposed into them (gemm::transpose16) on every
// product, which costs half as much as the product's FMAs when m is 16 (the default model at hidden
// 256: weights under the packed-panel cache's 1 MiB floor are packed per product). Here the rows of
// op(A) are transposed instead (at most 16 rows at a time, k x 16 floats), one register holds 16
// rows of one column of out, and each B element is broadcast from where it lies into the FMAs of
// the 16 rows.
//
// Same bits as the panels: every out element is the float32 FMA chain over the same k blocks
// (gemm_driver's, from t.kc) starting from zero, then stored or added to out, as the tile kernels
// do (fma(a, b, acc) is the same exact product either way round).
#pragma once

#include <cstddef>

#include "matmul.h"

namespace pleat {
namespace gemm {

// Rows [m0, m1) and columns [n0, n1) of batch entry `a`, `b`, `c` of `g` (g.trans_b), with k blocks
// of at most `kc_block`. False when the A buffer cannot be allocated.
bool small_m_transposed_b(const GemmArgs& g, size_t kc_block, const float* a, const float* b, float* c, size_t m0, size_t m1, size_t n0,
                          size_t n1);

}  // namespace gemm
}  // namespace pleat
