// Element-wise kernels: the binary ops of src/tensor/ops/Elementwise.ts with the broadcast
// shapes models use, a scale by a double, and the two sums that undo those broadcasts.
//
//   binary:     out[i] = a[i] op b[j]   op in {add, sub, mul, div}; j = i (Same), i % m (Suffix:
//               b repeats over a's leading dims), i / w (Rows: one b per row of w elements)
//   scale:      out[i] = T(double(a[i]) * s)                      (s is a JS number, a double)
//   sum_rows:   out[r] = T(sum over j ascending of double(g[r*w + j]))
//   sum_suffix: out[j] = sum over i ascending with i % m == j of g[i], each add rounded to T
//
// Results are the same bits as the TypeScript loops they replace: one IEEE operation per element
// in T (a float32 +, -, *, / equals the double result rounded once, since 53 >= 2*24 + 2), the
// sums in the same order and precision (the file is built without FMA contraction). Each output
// element is computed by one thread, so the thread count never changes a result.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_features.h"

namespace pleat {

enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3 };
enum class Broadcast : int { Same = 0, Suffix = 1, Rows = 2 };

// b has n elements (Same), m (Suffix) or n / w (Rows); `width` is m or w (ignored for Same).
void binary_f32(Isa isa, BinaryOp op, Broadcast kind, const float* a, const float* b, float* out, size_t n, size_t width);
void binary_f64(Isa isa, BinaryOp op, Broadcast kind, const double* a, const double* b, double* out, size_t n, size_t width);

void scale_f32(Isa isa, const float* a, double s, float* out, size_t n);
void scale_f64(Isa isa, const double* a, double s, double* out, size_t n);

// g has rows * w elements; out has rows.
void sum_rows_f32(const float* g, float* out, size_t rows, size_t w);
void sum_rows_f64(const double* g, double* out, size_t rows, size_t w);

// g has n elements (a multiple of m); out has m and is overwritten.
void sum_suffix_f32(Isa isa, const float* g, float* out, size_t n, size_t m);
void sum_suffix_f64(Isa isa, const double* g, double* out, size_t n, size_t m);

}  // namespace pleat
