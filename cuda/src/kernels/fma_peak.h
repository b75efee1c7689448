// fma_peak: a probe of the fp32 multiply-add throughput this machine reaches, in GFLOP/s.
//
// Every thread keeps many independent accumulator chains (acc = acc * m + c) so that the FMA
// pipes, not the FMA latency, set the pace: Zen 5 has two 512-bit FMA pipes with a latency of
// 4 cycles, so at least 2 x 4 = 8 chains are in flight; we keep 16 (AVX-512, 32 registers) or
// 12 (AVX2, 16 registers). One FMA counts as 2 FLOP. This is the compute "speed of light"
// that benches compare kernels against, measured in the same run rather than taken from a
// data sheet.
#pragma once

#include <cstdint>

#include "cpu_features.h"

namespace pleat {

struct FmaPeakResult {
  double gflops;   // all threads together: total FLOP / wall seconds / 1e9
  double seconds;  // wall time from the common start to the last thread's stop
  double flops;    // total FLOP executed
};

// Scalar reference of one chain step, the arithmetic every version repeats.
inline float fma_chain_ref(float acc, float m, float c) { return acc * m + c; }

// Runs `threads` std::threads for about `seconds` each, all on `isa`. Throws std::system_error
// when a thread cannot be started.
FmaPeakResult fma_peak(Isa isa, double seconds, unsigned threads);

}  // namespace pleat
