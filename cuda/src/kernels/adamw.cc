// adamw (see adamw.h): the update loop, split over the pool in blocks for large runs.
#include "adamw.h"

#include <cmath>

#include "cpu_features.h"
#include "thread_pool.h"

// Built with -fno-math-errno (cuda/CMakeLists.txt): sqrt without errno (v >= 0 here; a NaN
// stays NaN) lets the loop vectorise, and vsqrtpd / vdivpd round exactly as their scalar forms.

namespace pleat {

namespace {

// Elements below which one thread updates the run (a pool wake-up costs tens of microseconds).
constexpr size_t kParallelElements = size_t{1} << 18;

// The loop body; inlined into a baseline, an AVX2 and an AVX-512 build of the loop (same IEEE
// operations, wider vectors: the division and square root per element bound it, not memory).
template <typename T>
inline __attribute__((always_inline)) void update_body(const AdamwScalars& s, size_t begin, size_t end, T* __restrict w,
                                                       const T* __restrict g, float* __restrict m, float* __restrict v) {
  const double one_b1 = 1 - s.beta1, one_b2 = 1 - s.beta2;
  for (size_t k = begin; k < end; ++k) {
    const double gi = static_cast<double>(g[k]) * s.clip;
    const double mk = s.beta1 * static_cast<double>(m[k]) + one_b1 * gi;
    const double vk = s.beta2 * static_cast<double>(v[k]) + one_b2 * gi * gi;
    m[k] = static_cast<float>(mk);
    v[k] = static_cast<float>(vk);
    const double wi = static_cast<double>(w[k]);
    w[k] = static_cast<T>(wi - s.lr * (mk / s.c1 / (std::sqrt(vk / s.c2) + s.eps) + s.decay * wi));
  }
}

template <typename T>
void update_baseline(const AdamwScalars& s, size_t begin, size_t end, T* w, const T* g, float* m, float* v) {
  update_body(s, begin, end, w, g, m, v);
}

template <typename T>
__attribute__((target("avx512f"))) void update_avx512(const AdamwScalars& s, size_t begin, size_t end, T* w, const T* g, float* m,
                                                      float* v) {
  update_body(s, begin, end, w, g, m, v);
}

template <typename T>
__attribute__((target("avx2"))) void update_avx2(const AdamwScalars& s, size_t begin, size_t end, T* w, const T* g, float* m, float* v) {
  update_body(s, begin, end, w, g, m, v);
}

template <typename T>
void update(const AdamwScalars& s, size_t begin, size_t end, T* w, const T* g, float* m, float* v) {
  switch (active_isa()) {
    case Isa::Avx512: return update_avx512(s, begin, end, w, g, m, v);
    case Isa::Avx2: return update_avx2(s, begin, end, w, g, m, v);
    case Isa::Scalar: return update_baseline(s, begin, end, w, g, m, v);
  }
}

template <typename T>
void run(const AdamwScalars& s, size_t n, T* w, const T* g, float* m, float* v) {
  const unsigned threads = n < kParallelElements ? 1 : pool_threads();
  if (threads <= 1) {
    update(s, 0, n, w, g, m, v);
    return;
  }
  pool_run(threads, [&](unsigned t) { update(s, n * t / threads, n * (t + 1) / threads, w, g, m, v); });
}

}  // namespace

void adamw_f32(const AdamwScalars& s, size_t n, float* w, const float* g, float* m, float* v) { run(s, n, w, g, m, v); }
void adamw_f64(const AdamwScalars& s, size_t n, double* w, const double* g, float* m, float* v) { run(s, n, w, g, m, v); }

}  // namespace pleat
