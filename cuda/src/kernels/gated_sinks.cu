// The gated activation and the attention sinks on the device (see gated_sinks_cuda.h):
// grid-stride loops (grid_stride.cuh) over elements, rows and heads, each index's work a
// function of gated_sinks_element.h.
#include "gated_sinks_cuda.h"
#include "grid_stride.cuh"

namespace pleat {

namespace {

constexpr unsigned kThreads = 256;

unsigned blocks_for(size_t n) { return grid_blocks(n, kThreads); }

// out may be gate or up (no __restrict__): each thread reads its element before writing it.
__global__ void gated_activation_kernel(const float* gate, const float* up, float* out, size_t n, GluOptions o) {
  PLEAT_GRID_STRIDE(i, n) element::gated_activation_element(gate, up, out, o, i);
}

__global__ void gated_activation_backward_kernel(const float* __restrict__ gate, const float* __restrict__ up, const float* __restrict__ grad,
                                                 float* __restrict__ dgate, float* __restrict__ dup, size_t n, GluOptions o) {
  PLEAT_GRID_STRIDE(i, n) element::gated_activation_backward_element(gate, up, grad, dgate, dup, o, i);
}

// One thread a row of lse: its out row is its own.
__global__ void sinks_fold_kernel(float* __restrict__ out, double* __restrict__ lse, const float* __restrict__ sinks, size_t rows, size_t sq, size_t hq,
                                  size_t dv) {
  PLEAT_GRID_STRIDE(r, rows) element::sinks_fold_row(out, lse, sinks, sq, hq, dv, r);
}

__global__ void sinks_gradient_rows_kernel(const float* __restrict__ g, const float* __restrict__ out, const double* __restrict__ lse,
                                           const float* __restrict__ sinks, size_t rows, size_t sq, size_t hq, size_t dv, double* __restrict__ terms) {
  PLEAT_GRID_STRIDE(r, rows) terms[r] = element::sinks_gradient_row(g, out, lse, sinks, sq, hq, dv, r);
}

// One thread a head, its rows in order (a tree would reassociate the sum and change its bits).
__global__ void sinks_gradient_heads_kernel(const double* __restrict__ terms, size_t b, size_t sq, size_t hq, float* __restrict__ dz) {
  PLEAT_GRID_STRIDE(h, hq) element::sinks_gradient_head(terms, b, sq, hq, dz, h);
}

}  // namespace

cudaError_t gated_activation_launch(const float* gate, const float* up, float* out, size_t n, const GluOptions& o, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  gated_activation_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, out, n, o);
  return cudaGetLastError();
}

cudaError_t gated_activation_backward_launch(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                             const GluOptions& o, cudaStream_t stream) {
  if (n == 0 || (dgate == nullptr && dup == nullptr)) return cudaSuccess;
  gated_activation_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, grad, dgate, dup, n, o);
  return cudaGetLastError();
}

cudaError_t attention_sinks_fold_launch(float* out, double* lse, const float* sinks, size_t b, size_t sq, size_t hq, size_t dv, cudaStream_t stream) {
  const size_t rows = b * hq * sq;
  if (rows == 0) return cudaSuccess;
  sinks_fold_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(out, lse, sinks, rows, sq, hq, dv);
  return cudaGetLastError();
}

cudaError_t attention_sinks_gradient_launch(const float* g, const float* out, const double* lse, const float* sinks, size_t b, size_t sq, size_t hq,
                                            size_t dv, double* terms, float* dz, cudaStream_t stream) {
  if (hq == 0) return cudaSuccess;
  const size_t rows = b * hq * sq;
  if (rows > 0) sinks_gradient_rows_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(g, out, lse, sinks, rows, sq, hq, dv, terms);
  // Also with no rows: each head's gradient is then the empty sum, +0, as the TypeScript's.
  sinks_gradient_heads_kernel<<<blocks_for(hq), kThreads, 0, stream>>>(terms, b, sq, hq, dz);
  return cudaGetLastError();
}

}  // namespace pleat
