// rope: the rotary position embedding's rotation of src/tensor/ops/Rope.ts, x [B, S, heads, D]:
// for each token, head and pair i < D/2, with c = cos[row, i] and s = sign * sin[row, i]
// (row = the token's row of the tables: s when `table_rows` is S, else b * S + s):
//   out[i]         = T(double(x[i]) * c - double(x[i + D/2]) * s)
//   out[i + D/2]   = T(double(x[i + D/2]) * c + double(x[i]) * s)
// Each a float64 product, product, difference or sum rounded once to T, as the TypeScript loop
// computes them (built without FMA contraction): the same bits. One thread.
#pragma once

#include <cstddef>

namespace pleat {

void rope_f32(const float* x, const double* cos, const double* sin, float* out, size_t b, size_t s, size_t heads, size_t d,
              size_t table_rows, double sign);
void rope_f64(const double* x, const double* cos, const double* sin, double* out, size_t b, size_t s, size_t heads, size_t d,
              size_t table_rows, double sign);

}  // namespace pleat
