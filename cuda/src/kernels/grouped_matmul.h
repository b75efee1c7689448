// grouped_matmul: the products of a grouped expert GEMM in one call, each exactly the matmul
// (matmul.h) its group would run alone, so the bits are matmul's.
//
// Rows are split into G consecutive groups of rows[g] (sum = N):
//   grouped_rows:    out[group g] (rows[g] x n) = a[group g] (rows[g] x k) x op(b[g])
//                    b[g] at b + g * k * n, stored k x n, or n x k when trans_b
//   grouped_weights: out[g] (m x n) = a[group g]^T x c[group g]   (+= with accumulate)
//                    a rows of m, c rows of n; an empty group's out[g] is zeros (unchanged
//                    when accumulating)
// Threads: a grouped call with enough work runs one group per pool task (each product on its
// task's thread) when no group is too big to share, and each product on the whole pool
// otherwise; the bits never depend on which.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_features.h"

namespace pleat {

struct GroupedArgs {
  const float* a;
  const float* b;
  float* out;
  const int32_t* rows;
  size_t groups;
  size_t m;  // grouped_weights: out rows (a's row width); unused by grouped_rows
  size_t n;
  size_t k;  // grouped_rows: a's row width; unused by grouped_weights
  bool trans_b;
  bool accumulate;
};

// Returns false only when a packing buffer cannot be allocated.
bool grouped_rows(Isa isa, const GroupedArgs& g);
bool grouped_weights(Isa isa, const GroupedArgs& g);

}  // namespace pleat
