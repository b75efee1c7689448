// fma_peak probe (see fma_peak.h).
#include "fma_peak.h"

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace pleat {

namespace {

using Clock = std::chrono::steady_clock;

// Iterations per block between two clock reads: about 10 us of work, so reading the clock
// costs well under 1% and a thread overshoots its deadline by at most one block.
constexpr uint64_t kBlockIters = 1u << 13;

// The chain constants keep every accumulator finite and normal (it converges to c / (1 - m)),
// so no denormal or infinity slows a lane down.
constexpr float kMul = 0.9999f;
constexpr float kAdd = 1e-4f;

// Results go here so the compiler cannot drop the loops.
volatile float g_sink = 0.0f;

// Each block returns a value depending on every chain, and takes a run-time seed so nothing
// is folded at compile time. The fixed-count inner loops are unrolled by the compiler so all
// chains live in registers (checked with objdump: no spills in the loop).

__attribute__((target("avx512f"))) float block_avx512(uint64_t iters, float seed) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm512_set1_ps(seed + static_cast<float>(k));
  const __m512 m = _mm512_set1_ps(kMul), c = _mm512_set1_ps(kAdd);
  for (uint64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < kChains; ++k) acc[k] = _mm512_fmadd_ps(acc[k], m, c);
  }
  __m512 sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = _mm512_add_ps(sum, acc[k]);
  // Summed through memory: GCC 12's _mm512_reduce_add_ps trips a false -Wuninitialized.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}
constexpr double kFlopsPerIterAvx512 = 16.0 * 16 * 2;  // chains x lanes x 2

__attribute__((target("avx2,fma"))) float block_avx2(uint64_t iters, float seed) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm256_set1_ps(seed + static_cast<float>(k));
  const __m256 m = _mm256_set1_ps(kMul), c = _mm256_set1_ps(kAdd);
  for (uint64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kChains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], m, c);
  }
  __m256 sum = acc[0];
  for (int k = 1; k < kChains; ++k) sum = _mm256_add_ps(sum, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}
constexpr double kFlopsPerIterAvx2 = 12.0 * 8 * 2;

// Baseline x86-64 code: no FMA instruction, so a chain step is a multiply and an add
// (the compiler may still pack chains into SSE registers; that is the baseline's peak).
float block_scalar(uint64_t iters, float seed) {
  constexpr int kChains = 8;
  float acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = seed + static_cast<float>(k);
  for (uint64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 8
    for (int k = 0; k < kChains; ++k) acc[k] = fma_chain_ref(acc[k], kMul, kAdd);
  }
  float total = 0.0f;
  for (float v : acc) total += v;
  return total;
}
constexpr double kFlopsPerIterScalar = 8.0 * 2;

struct Shared {
  std::atomic<bool> go{false};
  Clock::time_point deadline{};
};

struct ThreadResult {
  double flops = 0.0;
  Clock::time_point end{};
};

void worker(Isa isa, unsigned index, Shared* shared, ThreadResult* out) {
  // Spin (yielding) until every thread exists, so they all run the same window.
  while (!shared->go.load(std::memory_order_acquire)) std::this_thread::yield();
  const Clock::time_point deadline = shared->deadline;
  const float seed = 1.0f + static_cast<float>(index);
  uint64_t blocks = 0;
  float sink = 0.0f;
  do {
    switch (isa) {
      case Isa::Avx512: sink += block_avx512(kBlockIters, seed); break;
      case Isa::Avx2: sink += block_avx2(kBlockIters, seed); break;
      case Isa::Scalar: sink += block_scalar(kBlockIters, seed); break;
    }
    ++blocks;
  } while (Clock::now() < deadline);
  out->end = Clock::now();
  const double per_iter = isa == Isa::Avx512 ? kFlopsPerIterAvx512
                          : isa == Isa::Avx2 ? kFlopsPerIterAvx2
                                             : kFlopsPerIterScalar;
  out->flops = static_cast<double>(blocks) * static_cast<double>(kBlockIters) * per_iter;
  g_sink = g_sink + sink;
}

}  // namespace

FmaPeakResult fma_peak(Isa isa, double seconds, unsigned threads) {
  Shared shared;
  std::vector<ThreadResult> results(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  try {
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker, isa, t, &shared, &results[t]);
  } catch (...) {
    // Release and join the threads that did start before reporting the failure.
    shared.deadline = Clock::now();
    shared.go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    throw;
  }
  const Clock::time_point start = Clock::now();
  shared.deadline = start + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(seconds));
  shared.go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();

  FmaPeakResult r{0.0, 0.0, 0.0};
  Clock::time_point last = start;
  for (const auto& t : results) {
    r.flops += t.flops;
    if (t.end > last) last = t.end;
  }
  r.seconds = std::chrono::duration<double>(last - start).count();
  r.gflops = r.seconds > 0.0 ? r.flops / r.seconds / 1e9 : 0.0;
  return r;
}

}  // namespace pleat
