// matmul: batched single-precision GEMM on host memory, row-major.
//
//   out[b] = op(A[b]) x op(B[b])            (accumulate: out[b] += op(A[b]) x op(B[b]))
//   op(A) is m x k: A stored m x k, or k x m when trans_a
//   op(B) is k x n: B stored k x n, or n x k when trans_b
//   A[b] starts at a + b * stride_a, B[b] at b + b * stride_b (0: one matrix for every b),
//   out[b] at out + b * m * n.
//
// Rounding: each out element is a float32 sum over k in increasing order, one fused
// multiply-add per term on AVX2 / AVX-512 (multiply then add on the scalar path), restarted at
// every k block (k cut into equal blocks of at most 256) and each block sum added to out (so
// accumulate adds to the old value). The order does not depend on the thread count or on which
// thread ran a block, so results are reproducible bit for bit for a given ISA and size class.
// Problems below kSmallMacs take matmul_ref, which adds each product (multiply then add)
// straight into out.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_features.h"

namespace pleat {

struct GemmArgs {
  const float* a;
  const float* b;
  float* out;
  size_t batch, m, n, k;
  bool trans_a, trans_b;
  size_t stride_a, stride_b;
  bool accumulate;
  // Non-zero: B (batch entry 0) does not change under this generation, so its panels may come
  // from packed_b_cache.h (next_generation()); the same bits either way.
  uint64_t generation = 0;
};

// Problems with fewer multiply-adds (m * n * k per batch entry) skip packing and run
// matmul_ref: packing costs more than it saves there.
constexpr size_t kSmallMacs = 8 * 8 * 8;

// Scalar reference, the specification: for each row i, for kk, for j, out += a * b (i-k-j order,
// so the inner loop is contiguous in B and out and the compiler vectorises it).
void matmul_ref(const GemmArgs& g);

// Blocked, packed, multi-threaded (thread_pool.h) GEMM on `isa`. Returns false only when a
// packing buffer cannot be allocated; out is then partly written.
bool matmul(Isa isa, const GemmArgs& g);

// matmul on the calling thread only (the same bits: the thread count never changes them), for
// callers that already run on the pool, one product per task.
bool matmul_one_thread(Isa isa, const GemmArgs& g);

}  // namespace pleat
