// axpy CUDA kernel (see axpy_cuda.h). A grid-stride loop: any n fits in a capped grid, and
// consecutive threads touch consecutive floats so loads and stores coalesce.
#include "axpy_cuda.h"

namespace pleat {

namespace {

constexpr unsigned kThreads = 256;
// Enough blocks to fill every SM many times over (H200: 132 SMs); beyond that the
// grid-stride loop covers the rest.
constexpr size_t kMaxBlocks = 65536;

__global__ void axpy_f32_kernel(float a, const float* __restrict__ x, float* __restrict__ y,
                                size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    y[i] = fmaf(a, x[i], y[i]);
  }
}

}  // namespace

cudaError_t axpy_f32_launch(float a, const float* dx, float* dy, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  size_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  axpy_f32_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a, dx, dy, n);
  return cudaGetLastError();
}

}  // namespace pleat
