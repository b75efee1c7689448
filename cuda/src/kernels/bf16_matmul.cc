// bf16_matmul (see bf16_matmul.h): the blocking and threading of gemm_driver.h around the
// AVX512-BF16 tile of bf16_matmul_tile.cc, its panels holding k in bf16 pairs.
#include "bf16_matmul.h"

#include <cstdint>
#include <cstring>

#include "bf16_matmul_tile.h"
#include "gemm_driver.h"

namespace pleat {

namespace {

// Multiply-adds below which one thread runs the product (matmul.cc's threshold, doubled: the
// bf16 kernel does a multiply-add in half the time, so a pool wake-up is worth twice as many;
// reasoned from matmul.cc's measurement, not measured for this kernel).
constexpr size_t kParallelMacs = size_t{1} << 21;

thread_local Scratch<uint32_t> t_pack_a;
thread_local Scratch<uint32_t> t_pack_b;

}  // namespace

bool matmul_bf16(const GemmArgs& g) {
  if (g.batch == 0 || g.m == 0 || g.n == 0) return true;
  if (g.k == 0) {
    if (!g.accumulate) std::memset(g.out, 0, g.batch * g.m * g.n * sizeof(float));
    return true;
  }
  const bf16gemm::Tile& t = bf16gemm::tile();
  return gemm_driver::run_sliced(g, t.mr, t.nr, kParallelMacs, false, [&](size_t bi, const gemm_driver::Slice& s) {
    return gemm_driver::slice<uint32_t, 2>(t, t.kcp, t_pack_a, t_pack_b, g, g.a + bi * g.stride_a, g.b + bi * g.stride_b,
                                           g.out + bi * g.m * g.n, s);
  });
}

}  // namespace pleat
