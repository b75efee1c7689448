// The CUDA twins of the element-wise CPU kernels (elementwise.h) on float32 device pointers:
// binary with the Same / Suffix / Rows broadcasts, scale, and the two sums that undo the
// broadcasts (sum_rows, sum_suffix), the per-element functions of elementwise_element.h over a
// grid: one thread per output element, the CPU kernels' order, so the same bits. Launched on
// `stream`; return the launch status.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace pleat {

// op: 0 add, 1 sub, 2 mul, 3 div; kind: 0 same, 1 suffix (b has width elements), 2 rows (b has
// n / width); a and out have n elements.
cudaError_t elementwise_binary_launch(int op, int kind, const float* a, const float* b, float* out, size_t n, size_t width, cudaStream_t stream);
cudaError_t elementwise_scale_launch(const float* a, double s, float* out, size_t n, cudaStream_t stream);
// g [rows, width] -> out [rows].
cudaError_t sum_rows_launch(const float* g, float* out, size_t rows, size_t width, cudaStream_t stream);
// g [n] (a multiple of width) -> out [width].
cudaError_t sum_suffix_launch(const float* g, float* out, size_t n, size_t width, cudaStream_t stream);

// out[i] = float(src[i]), rounded to nearest even.
cudaError_t narrow_launch(const double* src, float* out, size_t n, cudaStream_t stream);

// A transpose: out [a, n1, b, n0, c] from src [a, n0, b, n1, c].
cudaError_t swap_dims_launch(const float* src, float* out, size_t a, size_t n0, size_t b, size_t n1, size_t c, cudaStream_t stream);

// out[i] = src[i] rounded to bfloat16 (bf16.h's rule, bit for bit), float32 storage; out may
// equal src (in place).
cudaError_t round_bf16_launch(const float* src, float* out, size_t n, cudaStream_t stream);

}  // namespace pleat
