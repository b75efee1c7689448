// Run-time CPU feature detection and the instruction set the CPU kernels use.
//
// The addon is compiled for baseline x86-64 (no -march=native) so that one binary runs on the
// dev machine (AMD Zen 5, AVX-512) and on the GPU machine (another CPU). Each kernel has
// scalar, AVX2+FMA and AVX-512 versions; active_isa() picks the best one this CPU supports,
// unless a test or bench pinned a lower one with set_isa().
#pragma once

namespace pleat {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2;
  bool fma;
  bool avx512f;  // includes the OS check (XCR0) done by __builtin_cpu_supports
  unsigned cores;  // std::thread::hardware_concurrency(), at least 1
};

CpuFeatures cpu_features();

// Best ISA the CPU supports. Avx2 needs both AVX2 and FMA (the fp32 kernels use FMA).
Isa best_isa();

// The ISA kernels dispatch to: best_isa() or the override from set_isa().
Isa active_isa();

// Pins kernels to `isa` (for tests and benches of the slower paths). Returns false, changing
// nothing, when the CPU does not support it.
bool set_isa(Isa isa);

// Drops the override from set_isa().
void reset_isa();

const char* isa_name(Isa isa);

// Parses "scalar" / "avx2" / "avx512"; false for anything else.
bool parse_isa(const char* name, Isa* out);

}  // namespace pleat
