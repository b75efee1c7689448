// Run-time CPU feature detection (see cpu_features.h).
#include "cpu_features.h"

#include <atomic>
#include <cstring>
#include <initializer_list>
#include <thread>

namespace pleat {

namespace {

// -1: no override. An atomic because Node may load the addon in several worker threads, which
// share this one copy of the library.
std::atomic<int> g_isa_override{-1};

// The ISA bits of the CPU, read once: __builtin_cpu_supports is cheap, but kernels ask on every
// call and nothing here can change while the process runs.
struct IsaSupport {
  bool avx2_fma;
  bool avx512f;
};

const IsaSupport& isa_support() {
  static const IsaSupport support = [] {
    // libgcc fills the cpu model from a constructor; calling init again makes the order of
    // static initialisers irrelevant.
    __builtin_cpu_init();
    return IsaSupport{__builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0,
                      __builtin_cpu_supports("avx512f") != 0};
  }();
  return support;
}

bool supports(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return isa_support().avx2_fma;
    case Isa::Avx512: return isa_support().avx512f;
  }
  return false;
}

}  // namespace

CpuFeatures cpu_features() {
  __builtin_cpu_init();
  CpuFeatures f{};
  f.avx2 = __builtin_cpu_supports("avx2") != 0;
  f.fma = __builtin_cpu_supports("fma") != 0;
  f.avx512f = __builtin_cpu_supports("avx512f") != 0;
  // Not cached: CPUs can go on- and offline. glibc reads /sys here (microseconds), which is
  // why the dispatch path uses isa_support() instead.
  const unsigned n = std::thread::hardware_concurrency();
  f.cores = n == 0 ? 1 : n;
  return f;
}

Isa best_isa() {
  if (supports(Isa::Avx512)) return Isa::Avx512;
  if (supports(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

Isa active_isa() {
  const int pinned = g_isa_override.load(std::memory_order_relaxed);
  return pinned < 0 ? best_isa() : static_cast<Isa>(pinned);
}

bool set_isa(Isa isa) {
  if (!supports(isa)) return false;
  g_isa_override.store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

void reset_isa() { g_isa_override.store(-1, std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "scalar";
}

bool parse_isa(const char* name, Isa* out) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

}  // namespace pleat
