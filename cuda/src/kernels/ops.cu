// First CUDA kernels of the GPU path (see ops_cuda.h). Grid-stride loops over elements; the
// row kernels give one block to a row.
#include "grid_stride.cuh"
#include "ops_cuda.h"

namespace pleat {

namespace {

constexpr unsigned kThreads = 256;

unsigned blocks_for(size_t n) { return grid_blocks(n, kThreads); }

// float32 -> bfloat16, round to nearest even (NaN stays a quiet NaN): bf16.h's rounding.
__global__ void to_bf16_kernel(const float* __restrict__ in, uint16_t* __restrict__ out, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint32_t u = __float_as_uint(in[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      out[i] = static_cast<uint16_t>((u >> 16) | 0x40u);
      continue;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    out[i] = static_cast<uint16_t>(u >> 16);
  }
}

__global__ void permute_rows_kernel(const float* __restrict__ src, size_t cols, const int32_t* __restrict__ index, float* __restrict__ out,
                                    size_t rows, size_t out_cols, const float* __restrict__ probs, const int32_t* __restrict__ expert, size_t experts) {
  PLEAT_GRID_STRIDE(i, rows * out_cols) element::permute_rows_element(src, cols, index, out, out_cols, probs, expert, experts, i);
}

__global__ void permute_prob_kernel(const int32_t* __restrict__ index, const float* __restrict__ probs, const int32_t* __restrict__ expert,
                                    size_t experts, float* __restrict__ probs_out, size_t rows) {
  PLEAT_GRID_STRIDE(r, rows) element::permute_prob_element(index, probs, expert, experts, probs_out, r);
}

__global__ void softmax_rows_kernel(const float* __restrict__ x, float* __restrict__ out, size_t rows, size_t cols) {
  PLEAT_GRID_STRIDE(r, rows) element::softmax_row(x, out, cols, r);
}

__global__ void gather_rows_kernel(const float* __restrict__ src, const int32_t* __restrict__ index, float* __restrict__ out,
                                   size_t rows, size_t cols) {
  PLEAT_GRID_STRIDE(i, rows * cols) element::gather_rows_element(src, index, out, cols, i);
}

// One block per row: float64 sum of squares (a tree over the block), rstd in float64.
__global__ void rmsnorm_rows_kernel(const float* __restrict__ x, const float* __restrict__ weight, float* __restrict__ out,
                                    double* __restrict__ rstd_out, size_t cols, double eps) {
  __shared__ double partial[kThreads];
  const float* xr = x + static_cast<size_t>(blockIdx.x) * cols;
  double s = 0;
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const double v = xr[j];
    s += v * v;
  }
  partial[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  const double rstd = 1.0 / sqrt((cols == 0 ? 0.0 : partial[0] / static_cast<double>(cols)) + eps);
  if (threadIdx.x == 0 && rstd_out != nullptr) rstd_out[blockIdx.x] = rstd;
  float* outr = out + static_cast<size_t>(blockIdx.x) * cols;
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) outr[j] = static_cast<float>(static_cast<double>(xr[j]) * rstd * weight[j]);
}

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up, float* __restrict__ out, size_t n) {
  PLEAT_GRID_STRIDE(i, n) element::swiglu_element(gate, up, out, i);
}

// One block per token; threads over columns; the token's rows in increasing j.
__global__ void combine_rows_kernel(const float* __restrict__ rows, size_t row_stride, const int32_t* __restrict__ token_offsets,
                                    const int32_t* __restrict__ token_rows, const float* __restrict__ weights, size_t cols,
                                    float* __restrict__ out) {
  for (size_t c = threadIdx.x; c < cols; c += blockDim.x) element::combine_rows_element(rows, row_stride, token_offsets, token_rows, weights, cols, out, blockIdx.x, c);
}

__global__ void scatter_add_rows_kernel(const float* __restrict__ src, const int32_t* __restrict__ offsets, const int32_t* __restrict__ order, size_t cols,
                                        float* __restrict__ out) {
  for (size_t c = threadIdx.x; c < cols; c += blockDim.x) element::scatter_add_rows_element(src, offsets, order, cols, out, blockIdx.x, c);
}

__global__ void combine_backward_rows_kernel(const float* __restrict__ g, const int32_t* __restrict__ index, size_t n, size_t cols,
                                             const float* __restrict__ weights, float* __restrict__ grad_rows) {
  PLEAT_GRID_STRIDE(i, n * cols) element::combine_backward_rows_element(g, index, cols, weights, grad_rows, i);
}

// One thread per row: its float64 sum runs column by column in the CPU's order (a split of the
// row over threads would reassociate it and change the bits).
__global__ void combine_backward_weight_kernel(const float* __restrict__ g, const int32_t* __restrict__ index, size_t n, size_t cols,
                                               const float* __restrict__ rows, float* __restrict__ grad_weights) {
  PLEAT_GRID_STRIDE(j, n) element::combine_backward_weight_element(g, index, cols, rows, grad_weights, j);
}

__global__ void adamw_kernel(AdamwScalars s, size_t n, float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v) {
  PLEAT_GRID_STRIDE(k, n) element::adamw_element(s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay, w, g, m, v, k);
}

__global__ void rope_kernel(const float* __restrict__ x, const double* __restrict__ cos, const double* __restrict__ sin, float* __restrict__ out,
                            size_t b, size_t s, size_t heads, size_t half, size_t table_rows, double sign) {
  PLEAT_GRID_STRIDE(k, b * s * heads * half) element::rope_element(x, cos, sin, out, s, heads, half, table_rows, sign, k);
}

__global__ void swiglu_backward_kernel(const float* __restrict__ gate, const float* __restrict__ up, const float* __restrict__ grad,
                                       float* __restrict__ dgate, float* __restrict__ dup, size_t n) {
  PLEAT_GRID_STRIDE(i, n) element::swiglu_backward_element(gate, up, grad, dgate, dup, i);
}

// rmsnorm_backward.cc: a row's dot product and a column's sum over the rows each in one thread,
// in order (the CPU's bits); the dx elements in parallel from the row's coefficient.
__global__ void rmsnorm_backward_coefficient_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ g,
                                                    const double* __restrict__ rstd, size_t rows, size_t cols, double* __restrict__ coefficient) {
  PLEAT_GRID_STRIDE(r, rows) element::rmsnorm_backward_coefficient_row(x, w, g, rstd, cols, coefficient, r);
}

__global__ void rmsnorm_backward_dx_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ g,
                                           const double* __restrict__ rstd, const double* __restrict__ coefficient, size_t rows, size_t cols,
                                           float* __restrict__ dx) {
  PLEAT_GRID_STRIDE(i, rows * cols) element::rmsnorm_backward_dx_element(x, w, g, rstd, coefficient, cols, dx, i);
}

__global__ void rmsnorm_backward_dw_kernel(const float* __restrict__ x, const float* __restrict__ g, const double* __restrict__ rstd, size_t rows,
                                           size_t cols, double* __restrict__ dw) {
  PLEAT_GRID_STRIDE(j, cols) element::rmsnorm_backward_dw_column(x, g, rstd, rows, cols, dw, j);
}

// cross_entropy.h's kernels. The row maximum: one block per row, a tree of Math.max (it is
// commutative and associative, so the tree gives the CPU's sequential result).
__global__ void ce_row_max_kernel(const float* __restrict__ x, size_t cols, double* __restrict__ max) {
  __shared__ double partial[kThreads];
  const float* row = x + static_cast<size_t>(blockIdx.x) * cols;
  double m = element::kMinusInfinity;
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) m = element::js_max(m, row[j]);
  partial[threadIdx.x] = m;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] = element::js_max(partial[threadIdx.x], partial[threadIdx.x + half]);
    __syncthreads();
  }
  if (threadIdx.x == 0) max[blockIdx.x] = partial[0];
}

// One thread per row, j ascending as the CPU (exp within an ulp of std::exp's).
__global__ void ce_row_sum_exp_kernel(const float* __restrict__ x, size_t rows, size_t cols, const double* __restrict__ max, double* __restrict__ sum) {
  PLEAT_GRID_STRIDE(r, rows) element::ce_row_sum_exp_row(x, cols, max, sum, r);
}

__global__ void ce_grad_kernel(const float* __restrict__ x, size_t rows, size_t cols, const double* __restrict__ log_sum,
                               const int32_t* __restrict__ targets, int32_t ignore, int64_t start, double scale, float* __restrict__ d) {
  PLEAT_GRID_STRIDE(i, rows * cols) element::ce_grad_element(x, cols, log_sum, targets, ignore, start, scale, d, i);
}

// The router (moe/Router.ts select + probsFor), one thread per token.
__global__ void router_kernel(const float* __restrict__ logits, size_t tokens, int e, int k, int mode, int groups, int group_topk,
                              const double* __restrict__ bias, double scale, int32_t* __restrict__ indices, float* __restrict__ probs) {
  PLEAT_GRID_STRIDE(t, tokens) element::router_token(logits, e, k, mode, groups, group_topk, bias, scale, indices, probs, t);
}

}  // namespace

cudaError_t router_launch(const float* logits, size_t tokens, int experts, int topk, int mode, int groups, int group_topk, const double* bias,
                          double scale, int32_t* indices, float* probs, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  // Each thread keeps its token's scores in local memory: small blocks.
  router_kernel<<<static_cast<unsigned>((tokens + 63) / 64), 64, 0, stream>>>(logits, tokens, experts, topk, mode, groups, group_topk, bias, scale,
                                                                              indices, probs);
  return cudaGetLastError();
}

cudaError_t ce_row_max_launch(const float* x, size_t rows, size_t cols, double* max, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  ce_row_max_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, cols, max);
  return cudaGetLastError();
}

cudaError_t ce_row_sum_exp_launch(const float* x, size_t rows, size_t cols, const double* max, double* sum, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  ce_row_sum_exp_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, rows, cols, max, sum);
  return cudaGetLastError();
}

cudaError_t ce_grad_launch(const float* x, size_t rows, size_t cols, const double* log_sum, const int32_t* targets, int32_t ignore, int64_t start,
                           double scale, float* d, cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  ce_grad_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(x, rows, cols, log_sum, targets, ignore, start, scale, d);
  return cudaGetLastError();
}

cudaError_t rmsnorm_backward_launch(const float* x, const float* w, const float* g, const double* rstd, size_t rows, size_t cols, float* dx,
                                    double* dw, double* coefficient, cudaStream_t stream) {
  if (cols == 0) return cudaSuccess;
  // No rows: dw is a sum of nothing (the CPU's zeros).
  if (rows == 0) return dw == nullptr ? cudaSuccess : cudaMemsetAsync(dw, 0, cols * sizeof(double), stream);
  if (dx != nullptr) {
    rmsnorm_backward_coefficient_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, w, g, rstd, rows, cols, coefficient);
    rmsnorm_backward_dx_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(x, w, g, rstd, coefficient, rows, cols, dx);
  }
  if (dw != nullptr) rmsnorm_backward_dw_kernel<<<blocks_for(cols), kThreads, 0, stream>>>(x, g, rstd, rows, cols, dw);
  return cudaGetLastError();
}

cudaError_t rope_launch(const float* x, const double* cos, const double* sin, float* out, size_t b, size_t s, size_t heads, size_t d,
                        size_t table_rows, double sign, cudaStream_t stream) {
  const size_t n = b * s * heads * (d / 2);
  if (n == 0) return cudaSuccess;
  rope_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, cos, sin, out, b, s, heads, d / 2, table_rows, sign);
  return cudaGetLastError();
}

cudaError_t swiglu_backward_launch(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                   cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  swiglu_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, grad, dgate, dup, n);
  return cudaGetLastError();
}

cudaError_t to_bf16_launch(const float* in, uint16_t* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(in, out, n);
  return cudaGetLastError();
}

cudaError_t permute_rows_launch(const float* src, size_t cols, const int32_t* index, size_t rows, float* out, size_t out_cols, const float* probs,
                                const int32_t* expert, size_t experts, float* probs_out, cudaStream_t stream) {
  if (rows * out_cols > 0) permute_rows_kernel<<<blocks_for(rows * out_cols), kThreads, 0, stream>>>(src, cols, index, out, rows, out_cols, probs, expert, experts);
  if (rows > 0 && probs_out != nullptr) permute_prob_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(index, probs, expert, experts, probs_out, rows);
  return cudaGetLastError();
}

cudaError_t softmax_rows_launch(const float* x, float* out, size_t rows, size_t cols, cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  softmax_rows_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, out, rows, cols);
  return cudaGetLastError();
}

cudaError_t gather_rows_launch(const float* src, const int32_t* index, float* out, size_t rows, size_t cols, cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  gather_rows_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(src, index, out, rows, cols);
  return cudaGetLastError();
}

cudaError_t rmsnorm_rows_launch(const float* x, const float* weight, float* out, double* rstd, size_t rows, size_t cols, double eps,
                                cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  rmsnorm_rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, out, rstd, cols, eps);
  return cudaGetLastError();
}

cudaError_t swiglu_launch(const float* gate, const float* up, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, out, n);
  return cudaGetLastError();
}

cudaError_t combine_rows_launch(const float* rows, size_t row_stride, const int32_t* token_offsets, const int32_t* token_rows,
                                const float* weights, size_t tokens, size_t cols, float* out, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  combine_rows_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(rows, row_stride, token_offsets, token_rows, weights, cols, out);
  return cudaGetLastError();
}

cudaError_t scatter_add_rows_launch(const float* src, const int32_t* offsets, const int32_t* order, size_t targets, size_t cols, float* out,
                                    cudaStream_t stream) {
  if (targets == 0 || cols == 0) return cudaSuccess;
  scatter_add_rows_kernel<<<static_cast<unsigned>(targets), kThreads, 0, stream>>>(src, offsets, order, cols, out);
  return cudaGetLastError();
}

cudaError_t combine_backward_launch(const float* g, const int32_t* index, size_t n, size_t cols, const float* weights, const float* rows,
                                    float* grad_rows, float* grad_weights, cudaStream_t stream) {
  if (grad_rows != nullptr && n * cols > 0) {
    combine_backward_rows_kernel<<<blocks_for(n * cols), kThreads, 0, stream>>>(g, index, n, cols, weights, grad_rows);
  }
  // Also with no columns: each gradient is then the empty sum, +0, as on the CPU.
  if (grad_weights != nullptr && n > 0) combine_backward_weight_kernel<<<blocks_for(n), kThreads, 0, stream>>>(g, index, n, cols, rows, grad_weights);
  return cudaGetLastError();
}

cudaError_t adamw_f32_launch(const AdamwScalars& s, size_t n, float* w, const float* g, float* m, float* v, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  adamw_kernel<<<blocks_for(n), kThreads, 0, stream>>>(s, n, w, g, m, v);
  return cudaGetLastError();
}

}  // namespace pleat
