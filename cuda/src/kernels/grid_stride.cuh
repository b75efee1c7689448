// The launch shape of the grid-stride kernels (ops.cu, attention.cu): blocks of `threads`
// threads, at most kMaxBlocks of them, each thread taking every (grid size)-th index, so a kernel
// runs its per-element function (ops_element.h, attention_element.h: the functions
// pleat_kernel_emulation runs on the host) over all of [0, n).
#pragma once

#include <cstddef>

namespace pleat {

constexpr size_t kMaxBlocks = 65536;

inline unsigned grid_blocks(size_t n, unsigned threads) {
  const size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

#define PLEAT_GRID_STRIDE(i, n) \
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += static_cast<size_t>(gridDim.x) * blockDim.x)

}  // namespace pleat
