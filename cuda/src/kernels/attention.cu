// The device attention kernels (attention_cuda.h): the flash-tiled kernels over attention_flash.h's
// functions where the heads fit them, grid-stride loops over attention_element.h's otherwise; the
// same functions pleat_kernel_emulation runs on the host.
#include "attention_cuda.h"
#include "attention_flash.h"
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

// ---- flash-tiled (attention_flash.h): a block of kRows rows, one thread each --------------------

// A block of query rows starting at i0 of head h through every key tile it sees (key_tile), the
// tiles staged in shared memory (ks, vs) by the whole block.
template <class Row>
__device__ void key_tiles(const element::AttnShape& a, const float* k, const float* v, size_t b, size_t h, size_t i0, size_t bc, float* ks, float* vs, Row& r) {
  const size_t last = flash::last_query(a, i0);
  for (size_t j0 = flash::first_seen_key(a, b, i0, last); j0 < a.sk && !flash::past_diagonal(a, last, j0); j0 += bc) {
    const size_t n = a.sk - j0 < bc ? a.sk - j0 : bc;
    __syncthreads();
    flash::load_keys(a, k, v, b, h / (a.hq / a.hkv), j0, n, ks, vs, threadIdx.x, blockDim.x);
    __syncthreads();
    flash::key_tile(a, j0, n, ks, vs, r);
  }
}

__global__ void flash_forward_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                     float* __restrict__ out, float* lse32, double* lse64, size_t bc) {
  extern __shared__ float shared[];
  const size_t b = blockIdx.z, h = blockIdx.y, i0 = static_cast<size_t>(blockIdx.x) * flash::kRows;
  flash::ForwardRow r;
  flash::forward_begin(a, q, b, h, i0 + threadIdx.x, r);
  key_tiles(a, k, v, b, h, i0, bc, shared, shared + bc * a.d, r);
  flash::forward_end(a, r, out, lse32, lse64);
}

__global__ void flash_dq_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                const float* __restrict__ dout, const float* lse32, const double* lse64, const double* __restrict__ delta,
                                float* __restrict__ dq, size_t bc) {
  extern __shared__ float shared[];
  const size_t b = blockIdx.z, h = blockIdx.y, i0 = static_cast<size_t>(blockIdx.x) * flash::kRows;
  flash::GradQueryRow r;
  flash::dq_begin(a, q, dout, lse32, lse64, delta, b, h, i0 + threadIdx.x, r);
  key_tiles(a, k, v, b, h, i0, bc, shared, shared + bc * a.d, r);
  flash::dq_end(a, r, dq);
}

__global__ void flash_dkv_kernel(element::AttnShape a, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                 const float* __restrict__ dout, const float* lse32, const double* lse64, const double* __restrict__ delta,
                                 float* __restrict__ dk, float* __restrict__ dv, size_t bq) {
  extern __shared__ float shared[];
  float* qs = shared;
  float* dos = qs + bq * a.d;
  float* ls = dos + bq * a.dv;
  float* ds = ls + bq;
  const size_t b = blockIdx.z, kh = blockIdx.y, j0 = static_cast<size_t>(blockIdx.x) * flash::kRows;
  flash::GradKeyRow r;
  flash::dkv_begin(a, k, v, b, kh, j0 + threadIdx.x, r);
  const size_t group = a.hq / a.hkv;
  for (size_t h = kh * group; h < (kh + 1) * group; ++h)
    for (size_t i0 = 0; i0 < a.sq; i0 += bq) {
      const size_t n = a.sq - i0 < bq ? a.sq - i0 : bq;
      if (flash::past_diagonal(a, i0 + n - 1, j0) || flash::before_first_keys(a, b, i0, n, flash::last_key(a, j0))) continue;
      __syncthreads();
      flash::load_queries(a, q, dout, lse32, lse64, delta, b, h, i0, n, qs, dos, ls, ds, threadIdx.x, blockDim.x);
      __syncthreads();
      flash::dkv_tile(a, i0, n, qs, dos, ls, ds, r);
    }
  flash::dkv_end(a, r, dk, dv);
}

dim3 flash_grid(size_t rows, size_t heads, size_t batch) { return dim3(static_cast<unsigned>((rows + flash::kRows - 1) / flash::kRows), static_cast<unsigned>(heads), static_cast<unsigned>(batch)); }

// Whether the flash kernels' grid (row tiles, heads, batch) is within CUDA's limits: 2^31 - 1
// blocks in x, 65,535 in y and z. Shapes beyond it take the element kernels.
bool flash_grid_fits(const element::AttnShape& a) {
  const size_t tiles = ((a.sq > a.sk ? a.sq : a.sk) + flash::kRows - 1) / flash::kRows;
  return a.b <= 65535 && a.hq <= 65535 && tiles <= 2147483647;
}

}  // namespace

cudaError_t attention_forward_launch(const element::AttnShape& a, const float* q, const float* k, const float* v, float* out, float* lse32,
                                     double* lse64, double* row_lse, double* row_sum, cudaStream_t stream) {
  const size_t rows = a.b * a.hq * a.sq;
  if (rows == 0) return cudaSuccess;
  if (flash::fits(a) && flash_grid_fits(a)) {
    const size_t bc = flash::tile_rows(a.d + a.dv);
    flash_forward_kernel<<<flash_grid(a.sq, a.hq, a.b), flash::kRows, bc * (a.d + a.dv) * sizeof(float), stream>>>(a, q, k, v, out, lse32, lse64, bc);
    return cudaGetLastError();
  }
  row_stats_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(a, q, k, row_lse, row_sum, lse32, lse64);
  if (a.dv > 0) out_kernel<<<blocks_for(rows * a.dv), kThreads, 0, stream>>>(a, q, k, v, row_lse, row_sum, out);
  return cudaGetLastError();
}

cudaError_t attention_backward_launch(const element::AttnShape& a, const float* q, const float* k, const float* v, const float* out,
                                      const float* dout, const float* lse32, const double* lse64, double* delta, float* dq, float* dk, float* dv,
                                      cudaStream_t stream) {
  const size_t rows = a.b * a.hq * a.sq, keys = a.b * a.sk * a.hkv;
  if (rows > 0) delta_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(a, out, dout, delta);
  if (flash::fits(a) && flash_grid_fits(a)) {
    const size_t bc = flash::tile_rows(a.d + a.dv), bq = flash::tile_rows(flash::query_width(a));
    if (rows > 0) flash_dq_kernel<<<flash_grid(a.sq, a.hq, a.b), flash::kRows, bc * (a.d + a.dv) * sizeof(float), stream>>>(a, q, k, v, dout, lse32, lse64, delta, dq, bc);
    if (keys > 0)
      flash_dkv_kernel<<<flash_grid(a.sk, a.hkv, a.b), flash::kRows, bq * flash::query_width(a) * sizeof(float), stream>>>(a, q, k, v, dout, lse32, lse64, delta, dk, dv, bq);
    return cudaGetLastError();
  }
  if (rows * a.d > 0) dq_kernel<<<blocks_for(rows * a.d), kThreads, 0, stream>>>(a, q, k, v, dout, lse32, lse64, delta, dq);
  if (keys * a.d > 0) dkv_kernel<<<blocks_for(keys * a.d), kThreads, 0, stream>>>(a, q, k, v, dout, lse32, lse64, delta, false, dk);
  if (keys * a.dv > 0) dkv_kernel<<<blocks_for(keys * a.dv), kThreads, 0, stream>>>(a, q, k, v, dout, lse32, lse64, delta, true, dv);
  return cudaGetLastError();
}

}  // namespace pleat
