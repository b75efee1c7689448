// The sum of squares on the device (sum_squares_cuda.h): a block of 256 threads per chunk of 4096
// elements writes the chunk's partial sum, then one block sums the partials, each combining its
// threads' sums by halving in shared memory; the arithmetic is sum_squares_element.h's.
#include "sum_squares_cuda.h"
#include "sum_squares_element.h"

namespace pleat {

namespace {

using element::kSumSquaresThreads;

__device__ double halve_in_block(double* sums) {
  const unsigned t = threadIdx.x;
  __syncthreads();
  for (unsigned s = kSumSquaresThreads / 2; s > 0; s /= 2) {
    if (t < s) element::sum_squares_halve(sums, t, s);
    __syncthreads();
  }
  return sums[0];
}

__global__ void chunk_kernel(const float* __restrict__ x, size_t n, double* __restrict__ partials) {
  __shared__ double sums[kSumSquaresThreads];
  sums[threadIdx.x] = element::sum_squares_thread(x, n, blockIdx.x, threadIdx.x);
  const double total = halve_in_block(sums);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void partials_kernel(const double* __restrict__ partials, size_t count, double* __restrict__ out, size_t at) {
  __shared__ double sums[kSumSquaresThreads];
  sums[threadIdx.x] = element::sum_partials_thread(partials, count, threadIdx.x);
  const double total = halve_in_block(sums);
  if (threadIdx.x == 0) out[at] = total;
}

}  // namespace

size_t sum_squares_partials(size_t n) { return (n + element::kSumSquaresChunk - 1) / element::kSumSquaresChunk; }

cudaError_t sum_squares_launch(const float* x, size_t n, double* partials, double* out, size_t at, cudaStream_t stream) {
  const size_t chunks = sum_squares_partials(n);
  if (chunks > 0) chunk_kernel<<<static_cast<unsigned>(chunks), kSumSquaresThreads, 0, stream>>>(x, n, partials);
  partials_kernel<<<1, kSumSquaresThreads, 0, stream>>>(partials, chunks, out, at);
  return cudaGetLastError();
}

}  // namespace pleat
