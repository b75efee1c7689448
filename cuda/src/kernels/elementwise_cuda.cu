// The element-wise CUDA kernels (elementwise_cuda.h): grid-stride loops over the outputs, each
// calling its element function (elementwise_element.h).
#include "elementwise_cuda.h"
#include "elementwise_element.h"
#include "grid_stride.cuh"

namespace pleat {

namespace {

constexpr unsigned kThreads = 256;

__global__ void binary_kernel(int op, int kind, const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, size_t n, size_t width) {
  PLEAT_GRID_STRIDE(i, n) element::binary_element(op, kind, a, b, out, width, i);
}

__global__ void scale_kernel(const float* __restrict__ a, double s, float* __restrict__ out, size_t n) {
  PLEAT_GRID_STRIDE(i, n) element::scale_element(a, s, out, i);
}

__global__ void sum_rows_kernel(const float* __restrict__ g, float* __restrict__ out, size_t rows, size_t width) {
  PLEAT_GRID_STRIDE(r, rows) element::sum_rows_row(g, out, width, r);
}

__global__ void sum_suffix_kernel(const float* __restrict__ g, float* __restrict__ out, size_t n, size_t width) {
  PLEAT_GRID_STRIDE(j, width) element::sum_suffix_column(g, out, n, width, j);
}

__global__ void swap_dims_kernel(const float* __restrict__ src, float* __restrict__ out, size_t n, size_t n0, size_t b, size_t n1, size_t c) {
  PLEAT_GRID_STRIDE(o, n) element::swap_dims_element(src, out, n0, b, n1, c, o);
}

// No __restrict__: out may be src (each thread reads and writes only its own element).
__global__ void round_bf16_kernel(const float* src, float* out, size_t n) {
  PLEAT_GRID_STRIDE(i, n) element::round_bf16_element(src, out, i);
}

__global__ void narrow_kernel(const double* __restrict__ src, float* __restrict__ out, size_t n) {
  PLEAT_GRID_STRIDE(i, n) element::narrow_element(src, out, i);
}

}  // namespace

cudaError_t elementwise_binary_launch(int op, int kind, const float* a, const float* b, float* out, size_t n, size_t width, cudaStream_t stream) {
  if (n == 0 || (kind != 0 && width == 0)) return cudaSuccess;
  binary_kernel<<<grid_blocks(n, kThreads), kThreads, 0, stream>>>(op, kind, a, b, out, n, width);
  return cudaGetLastError();
}

cudaError_t elementwise_scale_launch(const float* a, double s, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  scale_kernel<<<grid_blocks(n, kThreads), kThreads, 0, stream>>>(a, s, out, n);
  return cudaGetLastError();
}

cudaError_t sum_rows_launch(const float* g, float* out, size_t rows, size_t width, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  sum_rows_kernel<<<grid_blocks(rows, kThreads), kThreads, 0, stream>>>(g, out, rows, width);
  return cudaGetLastError();
}

cudaError_t sum_suffix_launch(const float* g, float* out, size_t n, size_t width, cudaStream_t stream) {
  if (width == 0) return cudaSuccess;
  sum_suffix_kernel<<<grid_blocks(width, kThreads), kThreads, 0, stream>>>(g, out, n, width);
  return cudaGetLastError();
}

cudaError_t narrow_launch(const double* src, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  narrow_kernel<<<grid_blocks(n, kThreads), kThreads, 0, stream>>>(src, out, n);
  return cudaGetLastError();
}

cudaError_t swap_dims_launch(const float* src, float* out, size_t a, size_t n0, size_t b, size_t n1, size_t c, cudaStream_t stream) {
  const size_t n = a * n0 * b * n1 * c;
  if (n == 0) return cudaSuccess;
  swap_dims_kernel<<<grid_blocks(n, kThreads), kThreads, 0, stream>>>(src, out, n, n0, b, n1, c);
  return cudaGetLastError();
}

cudaError_t round_bf16_launch(const float* src, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  round_bf16_kernel<<<grid_blocks(n, kThreads), kThreads, 0, stream>>>(src, out, n);
  return cudaGetLastError();
}

}  // namespace pleat
