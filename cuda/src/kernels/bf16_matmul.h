// bf16_matmul: the bf16 GEMM of the mixed-precision forward, on AVX512-BF16 (VDPBF16PS).
//
//   out[b] = op(A[b]) x op(B[b])            (accumulate: out[b] += ...), arguments as matmul.h
//
// A and B are float32 arrays holding bfloat16 values (the bf16 tape rounds every forward output,
// and parameters enter as bf16 copies): packing takes each value's bf16 (rounding to nearest
// even, so it is exact for them), and VDPBF16PS multiplies pairs of bf16 and accumulates in
// fp32. The product of two bf16 values is exact in fp32 (8 + 8 significant bits), so the result
// is an fp32 sum of the exact products, as the fp32 kernel computes on the same inputs, only in
// another order: each out element is the sum over k in increasing pairs, restarted at every
// k block (blocks of at most 512, even) and each block sum added to out. Like matmul.h the order
// does not depend on the thread count.
//
// Differences from fp32 arithmetic (VDPBF16PS ignores MXCSR): denormal inputs, and a denormal
// running sum, count as zero and denormal results are flushed to zero (bf16 values of weights
// and activations are not denormal in practice; the loss is below 2^-126 per step).
//
// Call only when bf16_hardware() (bf16.h); without AVX512-BF16 the caller uses matmul(), which
// gives the same exact products summed in fp32.
#pragma once

#include "matmul.h"

namespace pleat {

// Blocked, packed, multi-threaded (thread_pool.h) bf16 GEMM. Returns false only when a packing
// buffer cannot be allocated; out is then partly written.
bool matmul_bf16(const GemmArgs& g);

}  // namespace pleat
