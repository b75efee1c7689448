// The device attention kernels (attention_cuda.h): grid-stride loops over attention_element.h's
// functions, the same ones pleat_kernel_emulation runs on the host.
#include "attention_cuda.h"
#include "grid_stride.cuh"

namespace pleat {

namespace {

// Each thread loops over a row's keys: fewer threads a block than ops.cu's elementwise kernels.
constexpr unsigned kThreads = 128;

unsigned blocks_for(size_t n) { return grid_blocks(n, kThreads); }

__global__ void row_stats_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, double* row_lse, double* row_sum,
                                 float* lse32, double* lse64) {
  PLEAT_GRID_STRIDE(r, a.b * a.hq * a.sq) element::attention_row_stats(a, q, k, row_lse, row_sum, lse32, lse64, r);
}

__global__ void out_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                           const double* __restrict__ row_lse, const double* __restrict__ row_sum, float* __restrict__ out) {
  PLEAT_GRID_STRIDE(i, a.b * a.sq * a.hq * a.dv) element::attention_out_element(a, q, k, v, row_lse, row_sum, out, i);
}

__global__ void delta_kernel(element::AttnShape a, const float* __restrict__ out, const float* __restrict__ dout, double* __restrict__ delta) {
  PLEAT_GRID_STRIDE(r, a.b * a.hq * a.sq) element::attention_delta_row(a, out, dout, delta, r);
}

__global__ void dq_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                          const float* __restrict__ dout, const float* lse32, const double* lse64, const double* __restrict__ delta,
                          float* __restrict__ dq) {
  PLEAT_GRID_STRIDE(i, a.b * a.sq * a.hq * a.d) element::attention_dq_element(a, q, k, v, dout, lse32, lse64, delta, dq, i);
}

__global__ void dkv_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                           const float* __restrict__ dout, const float* lse32, const double* lse64, const double* __restrict__ delta, bool with_v,
                           float* __restrict__ grad) {
  PLEAT_GRID_STRIDE(i, a.b * a.sk * a.hkv * (with_v ? a.dv : a.d)) element::attention_dkv_element(a, q, k, v, dout, lse32, lse64, delta, with_v, grad, i);
}

}  // namespace

cudaError_t attention_forward_launch(const element::AttnShape& a, const float* q, const float* k, const float* v, float* out, float* lse32,
                                     double* lse64, double* row_lse, double* row_sum, cudaStream_t stream) {
  const size_t rows = a.b * a.hq * a.sq;
  if (rows == 0) return cudaSuccess;
  row_stats_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(a, q, k, row_lse, row_sum, lse32, lse64);
  if (a.dv > 0) out_kernel<<<blocks_for(rows * a.dv), kThreads, 0, stream>>>(a, q, k, v, row_lse, row_sum, out);
  return cudaGetLastError();
}

cudaError_t attention_backward_launch(const element::AttnShape& a, const float* q, const float* k, const float* v, const float* out,
                                      const float* dout, const float* lse32, const double* lse64, double* delta, float* dq, float* dk, float* dv,
                                      cudaStream_t stream) {
  const size_t rows = a.b * a.hq * a.sq, keys = a.b * a.sk * a.hkv;
  if (rows > 0) delta_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(a, out, dout, delta);
  if (rows * a.d > 0) dq_kernel<<<blocks_for(rows * a.d), kThreads, 0, stream>>>(a, q, k, v, dout, lse32, lse64, delta, dq);
  if (keys * a.d > 0) dkv_kernel<<<blocks_for(keys * a.d), kThreads, 0, stream>>>(a, q, k, v, dout, lse32, lse64, delta, false, dk);
  if (keys * a.dv > 0) dkv_kernel<<<blocks_for(keys * a.dv), kThreads, 0, stream>>>(a, q, k, v, dout, lse32, lse64, delta, true, dv);
  return cudaGetLastError();
}

}  // namespace pleat
