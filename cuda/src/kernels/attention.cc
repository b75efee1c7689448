// Attention forward / backward (see attention.h): shared layout and packing, the float64
// references, per-ISA vector traits, and the task split over the thread pool.
#include "attention.h"

#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "scratch.h"
#include "thread_pool.h"
#include "vmath.h"

namespace pleat {

namespace {

// Offsets into the flat arrays, and positions with their defaults.
struct Geo {
  const AttnArgs& a;
  size_t group;
  size_t q_off(size_t b, size_t i, size_t h) const { return ((b * a.sq + i) * a.hq + h) * a.d; }
  size_t k_off(size_t b, size_t j, size_t kh) const { return ((b * a.sk + j) * a.hkv + kh) * a.d; }
  size_t v_off(size_t b, size_t j, size_t kh) const { return ((b * a.sk + j) * a.hkv + kh) * a.dv; }
  size_t o_off(size_t b, size_t i, size_t h) const { return ((b * a.sq + i) * a.hq + h) * a.dv; }
  size_t lse_off(size_t b, size_t h, size_t i) const { return (b * a.hq + h) * a.sq + i; }
  int32_t qp(size_t b, size_t i) const {
    if (a.qpos == nullptr) return static_cast<int32_t>(i);
    return a.qpos_len == a.sq ? a.qpos[i] : a.qpos[b * a.sq + i];
  }
  int32_t kp(size_t b, size_t j) const {
    if (a.kpos == nullptr) return static_cast<int32_t>(j);
    return a.kpos_len == a.sk ? a.kpos[j] : a.kpos[b * a.sk + j];
  }
  // The lowest key position query i sees: INT32_MIN (every key) without first keys.
  int32_t qf(size_t b, size_t i) const {
    if (a.qfirst == nullptr) return INT32_MIN;
    return a.qfirst_len == a.sq ? a.qfirst[i] : a.qfirst[b * a.sq + i];
  }
  bool visible(size_t b, size_t i, size_t j) const {
    if (!a.causal) return true;
    const int32_t k = kp(b, j);
    return k <= qp(b, i) && qf(b, i) <= k;
  }
};

// One kv head's keys, packed for the vector kernels.
struct Packed {
  const float* kt;       // k transposed per block of w keys: kt[(kb * D + e) * w + lane]
  const int32_t* kpos;   // key positions, INT32_MAX past Sk
  const int32_t* kmin;   // smallest position of each block
  const int32_t* kmax;   // largest position of each block's keys (padding lanes left out)
  const float* zeros;    // max(D, Dv) zeros, the rows of padding queries
};

// x is k or v (row length dim) of kv head kh, batch b; dst gets ceil(Sk / w) blocks.
void pack_transposed(const Geo& g, const float* x, size_t dim, size_t b, size_t kh, size_t w, float* dst) {
  const size_t nkb = (g.a.sk + w - 1) / w;
  for (size_t kb = 0; kb < nkb; ++kb) {
    float* blk = dst + kb * dim * w;
    for (size_t lane = 0; lane < w; ++lane) {
      const size_t j = kb * w + lane;
      if (j < g.a.sk) {
        const float* row = x + ((b * g.a.sk + j) * g.a.hkv + kh) * dim;
        for (size_t e = 0; e < dim; ++e) blk[e * w + lane] = row[e];
      } else {
        for (size_t e = 0; e < dim; ++e) blk[e * w + lane] = 0.0f;
      }
    }
  }
}

void pack_positions(const Geo& g, size_t b, size_t w, int32_t* kpos, int32_t* kmin, int32_t* kmax) {
  const size_t nkb = (g.a.sk + w - 1) / w;
  for (size_t kb = 0; kb < nkb; ++kb) {
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (size_t lane = 0; lane < w; ++lane) {
      const size_t j = kb * w + lane;
      kpos[j] = j < g.a.sk ? g.kp(b, j) : INT32_MAX;
      lo = std::min(lo, kpos[j]);
      if (j < g.a.sk) hi = std::max(hi, kpos[j]);
    }
    kmin[kb] = lo;
    kmax[kb] = hi;
  }
}

}  // namespace

// ---- references --------------------------------------------------------------------------------

void attention_forward_ref(const AttnArgs& a, float* out, float* lse32, double* lse64) {
  const Geo g{a, a.hq / a.hkv};
  std::vector<double> s(a.sk), acc(a.dv);
  for (size_t b = 0; b < a.b; ++b) {
    for (size_t h = 0; h < a.hq; ++h) {
      const size_t kh = h / g.group;
      for (size_t i = 0; i < a.sq; ++i) {
        const float* q = a.q + g.q_off(b, i, h);
        double mx = -INFINITY;
        for (size_t j = 0; j < a.sk; ++j) {
          if (!g.visible(b, i, j)) continue;
          const float* k = a.k + g.k_off(b, j, kh);
          double dot = 0.0;
          for (size_t e = 0; e < a.d; ++e) dot += static_cast<double>(q[e]) * k[e];
          s[j] = static_cast<double>(a.scale) * dot;
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (size_t j = 0; j < a.sk; ++j) {
          if (g.visible(b, i, j)) sum += std::exp(s[j] - mx);
        }
        const double lse = sum == 0.0 ? -INFINITY : mx + std::log(sum);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (size_t j = 0; j < a.sk && sum > 0.0; ++j) {
          if (!g.visible(b, i, j)) continue;
          const double p = std::exp(s[j] - lse);
          const float* v = a.v + g.v_off(b, j, kh);
          for (size_t e = 0; e < a.dv; ++e) acc[e] += p * v[e];
        }
        for (size_t e = 0; e < a.dv; ++e) out[g.o_off(b, i, h) + e] = static_cast<float>(acc[e]);
        if (lse32 != nullptr) lse32[g.lse_off(b, h, i)] = static_cast<float>(lse);
        if (lse64 != nullptr) lse64[g.lse_off(b, h, i)] = lse;
      }
    }
  }
}

void attention_backward_ref(const AttnArgs& a, const float* out, const float* dout,
                            const float* lse32, const double* lse64, float* dq, float* dk,
                            float* dv) {
  const Geo g{a, a.hq / a.hkv};
  std::vector<double> gq(a.b * a.sq * a.hq * a.d, 0.0), gk(a.b * a.sk * a.hkv * a.d, 0.0);
  std::vector<double> gv(a.b * a.sk * a.hkv * a.dv, 0.0);
  for (size_t b = 0; b < a.b; ++b) {
    for (size_t h = 0; h < a.hq; ++h) {
      const size_t kh = h / g.group;
      for (size_t i = 0; i < a.sq; ++i) {
        const size_t li = g.lse_off(b, h, i);
        const double lse = lse32 != nullptr ? lse32[li] : lse64[li];
        if (lse == -INFINITY) continue;
        const float* q = a.q + g.q_off(b, i, h);
        const float* go = dout + g.o_off(b, i, h);
        const float* o = out + g.o_off(b, i, h);
        double delta = 0.0;
        for (size_t e = 0; e < a.dv; ++e) delta += static_cast<double>(go[e]) * o[e];
        for (size_t j = 0; j < a.sk; ++j) {
          if (!g.visible(b, i, j)) continue;
          const float* k = a.k + g.k_off(b, j, kh);
          const float* v = a.v + g.v_off(b, j, kh);
          double dot = 0.0, dp = 0.0;
          for (size_t e = 0; e < a.d; ++e) dot += static_cast<double>(q[e]) * k[e];
          for (size_t e = 0; e < a.dv; ++e) dp += static_cast<double>(go[e]) * v[e];
          const double p = std::exp(static_cast<double>(a.scale) * dot - lse);
          const double ds = static_cast<double>(a.scale) * p * (dp - delta);
          for (size_t e = 0; e < a.d; ++e) {
            gq[g.q_off(b, i, h) + e] += ds * k[e];
            gk[g.k_off(b, j, kh) + e] += ds * q[e];
          }
          for (size_t e = 0; e < a.dv; ++e) gv[g.v_off(b, j, kh) + e] += p * go[e];
        }
      }
    }
  }
  for (size_t i = 0; i < gq.size(); ++i) dq[i] = static_cast<float>(gq[i]);
  for (size_t i = 0; i < gk.size(); ++i) dk[i] = static_cast<float>(gk[i]);
  for (size_t i = 0; i < gv.size(); ++i) dv[i] = static_cast<float>(gv[i]);
}

// ---- vector kernels, one instantiation of attention_impl.h per ISA ------------------------------

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace attn_avx512 {
struct V {
  static constexpr int W = 16;
  using F = __m512;
  using M = __mmask16;
  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F load_n(const float* p, size_t n) { return _mm512_maskz_loadu_ps(vmath::mask16(static_cast<ptrdiff_t>(n)), p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static void store_n(float* p, F x, size_t n) { _mm512_mask_storeu_ps(p, vmath::mask16(static_cast<ptrdiff_t>(n)), x); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F exp(F x) { return vmath::exp_nonpos(x); }
  static float hsum(F x) { return vmath::hsum(x); }
  static float hmax(F x) { return vmath::hmax(x); }
  // Lanes below `valid` with first <= kpos <= qpos (every one of them when not causal).
  static M visible(const int32_t* kpos, int32_t qpos, int32_t first, size_t valid, bool causal) {
    M m = vmath::mask16(static_cast<ptrdiff_t>(valid));
    if (causal) {
      const __m512i kp = _mm512_loadu_si512(kpos);
      m &= _mm512_cmple_epi32_mask(kp, _mm512_set1_epi32(qpos)) & _mm512_cmpge_epi32_mask(kp, _mm512_set1_epi32(first));
    }
    return m;
  }
  static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
};
#include "attention_impl.h"
}  // namespace attn_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace attn_avx2 {
struct V {
  static constexpr int W = 8;
  using F = __m256;
  using M = __m256;
  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  // Full vectors avoid vmaskmov, which is microcoded and slow on AMD cores (stores especially).
  static F load_n(const float* p, size_t n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, vmath::mask8(static_cast<ptrdiff_t>(n)));
  }
  static void store(float* p, F x) { _mm256_storeu_ps(p, x); }
  static void store_n(float* p, F x, size_t n) {
    if (n >= 8) {
      _mm256_storeu_ps(p, x);
    } else {
      _mm256_maskstore_ps(p, vmath::mask8(static_cast<ptrdiff_t>(n)), x);
    }
  }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F exp(F x) { return vmath::exp_nonpos(x); }
  static float hsum(F x) { return vmath::hsum(x); }
  static float hmax(F x) { return vmath::hmax(x); }
  // Lanes below `valid` with first <= kpos <= qpos (every one of them when not causal).
  static M visible(const int32_t* kpos, int32_t qpos, int32_t first, size_t valid, bool causal) {
    __m256i m = vmath::mask8(static_cast<ptrdiff_t>(valid));
    if (causal) {
      const __m256i kp = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kpos));
      const __m256i later = _mm256_cmpgt_epi32(kp, _mm256_set1_epi32(qpos));
      const __m256i earlier = _mm256_cmpgt_epi32(_mm256_set1_epi32(first), kp);
      m = _mm256_andnot_si256(_mm256_or_si256(later, earlier), m);
    }
    return _mm256_castsi256_ps(m);
  }
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
};
#include "attention_impl.h"
}  // namespace attn_avx2
#pragma GCC pop_options

// ---- dispatch ----------------------------------------------------------------------------------

namespace {

thread_local Scratch<float> t_kt, t_vt, t_obuf, t_zeros, t_delta;
thread_local Scratch<int32_t> t_kpos, t_kmin, t_kmax;

// Fewer multiply-adds than this stay on the calling thread (as for matmul).
constexpr size_t kParallelMacs = size_t{1} << 20;

// Packs kv head kh of batch b into this thread's scratch; false when out of memory.
bool pack_head(const Geo& g, size_t b, size_t kh, size_t w, bool with_v, Packed* pk, float** vt) {
  const AttnArgs& a = g.a;
  const size_t nkb = (a.sk + w - 1) / w;
  float* kt = t_kt.get(nkb * w * a.d);
  int32_t* kpos = t_kpos.get(nkb * w);
  int32_t* kmin = t_kmin.get(nkb);
  int32_t* kmax = t_kmax.get(nkb);
  float* zeros = t_zeros.get(std::max(a.d, a.dv));
  if (kt == nullptr || kpos == nullptr || kmin == nullptr || kmax == nullptr || zeros == nullptr) return false;
  std::fill(zeros, zeros + std::max(a.d, a.dv), 0.0f);
  pack_transposed(g, a.k, a.d, b, kh, w, kt);
  pack_positions(g, b, w, kpos, kmin, kmax);
  if (with_v) {
    *vt = t_vt.get(nkb * w * a.dv);
    if (*vt == nullptr) return false;
    pack_transposed(g, a.v, a.dv, b, kh, w, *vt);
  }
  *pk = Packed{kt, kpos, kmin, kmax, zeros};
  return true;
}

// Runs fn(task) for every task, on the pool when the problem is large enough.
void run_tasks(size_t tasks, size_t macs, const std::function<void(unsigned)>& fn) {
  if (macs < kParallelMacs) {
    for (size_t t = 0; t < tasks; ++t) fn(static_cast<unsigned>(t));
  } else {
    pool_run(static_cast<unsigned>(tasks), fn);
  }
}

}  // namespace

bool attention_forward(Isa isa, const AttnArgs& a, float* out, float* lse32, double* lse64) {
  if (a.b == 0 || a.sq == 0 || a.hq == 0) return true;
  if (isa == Isa::Scalar) {
    attention_forward_ref(a, out, lse32, lse64);
    return true;
  }
  const Geo g{a, a.hq / a.hkv};
  const size_t w = isa == Isa::Avx512 ? 16 : 8;
  // Query chunks of at least 64 rows, about 4 tasks per thread: the pool hands tasks out
  // dynamically, which evens out causal rows (later queries see more keys). The last chunks
  // go first (every head's last chunk, then every head's one before it, ...): under a causal
  // mask they are the longest, and one taken last would leave the other threads waiting.
  // Each task writes its own rows, so the order changes no bits.
  const size_t heads = a.b * a.hkv;
  const size_t want = (4 * static_cast<size_t>(pool_threads()) + heads - 1) / heads;
  const size_t chunks = std::max<size_t>(1, std::min(want, (a.sq + 63) / 64));
  const size_t rows_per = (a.sq + chunks - 1) / chunks;
  std::vector<char> failed(heads * chunks, 0);
  run_tasks(heads * chunks, a.b * a.hq * a.sq * a.sk * (a.d + a.dv), [&](unsigned task) {
    const size_t bh = task % heads, c = chunks - 1 - task / heads;
    const size_t b = bh / a.hkv, kh = bh % a.hkv;
    const size_t i0 = std::min(a.sq, c * rows_per), i1 = std::min(a.sq, i0 + rows_per);
    const size_t dvp = (a.dv + w - 1) / w * w;
    Packed pk{};
    float* obuf = t_obuf.get(8 * dvp + 8 * w);
    if (i0 >= i1) return;
    if (obuf == nullptr || !pack_head(g, b, kh, w, false, &pk, nullptr)) {
      failed[task] = 1;
      return;
    }
    float* pbuf = obuf + 8 * dvp;
    if (isa == Isa::Avx512) {
      attn_avx512::forward_range(g, b, kh, i0, i1, pk, obuf, pbuf, out, lse32, lse64);
    } else {
      attn_avx2::forward_range(g, b, kh, i0, i1, pk, obuf, pbuf, out, lse32, lse64);
    }
  });
  return std::find(failed.begin(), failed.end(), 1) == failed.end();
}

bool attention_backward(Isa isa, const AttnArgs& a, const float* out, const float* dout,
                        const float* lse32, const double* lse64, float* dq, float* dk, float* dv) {
  if (isa == Isa::Scalar) {
    attention_backward_ref(a, out, dout, lse32, lse64, dq, dk, dv);
    return true;
  }
  const Geo g{a, a.hq / a.hkv};
  const size_t w = isa == Isa::Avx512 ? 16 : 8;
  const size_t heads = a.b * a.hkv;
  std::vector<char> failed(heads, 0);
  run_tasks(heads, 2 * a.b * a.hq * a.sq * a.sk * (a.d + a.dv), [&](unsigned task) {
    const size_t b = task / a.hkv, kh = task % a.hkv;
    // This task is the only writer of these rows: zero them first.
    for (size_t j = 0; j < a.sk; ++j) {
      std::fill_n(dk + g.k_off(b, j, kh), a.d, 0.0f);
      std::fill_n(dv + g.v_off(b, j, kh), a.dv, 0.0f);
    }
    for (size_t h = kh * g.group; h < (kh + 1) * g.group; ++h) {
      for (size_t i = 0; i < a.sq; ++i) std::fill_n(dq + g.q_off(b, i, h), a.d, 0.0f);
    }
    Packed pk{};
    float* vt = nullptr;
    float* delta = t_delta.get(g.group * a.sq);
    // pbuf and dsbuf (QB x W each), then the dk / dv tile (W x (d + dv)).
    float* bufs = t_obuf.get(16 * w + w * (a.d + a.dv));
    if (delta == nullptr || bufs == nullptr || !pack_head(g, b, kh, w, true, &pk, &vt)) {
      failed[task] = 1;
      return;
    }
    for (size_t h = kh * g.group; h < (kh + 1) * g.group; ++h) {
      for (size_t i = 0; i < a.sq; ++i) {
        const float* o = out + g.o_off(b, i, h);
        const float* go = dout + g.o_off(b, i, h);
        double d = 0.0;
        for (size_t e = 0; e < a.dv; ++e) d += static_cast<double>(o[e]) * go[e];
        delta[(h - kh * g.group) * a.sq + i] = static_cast<float>(d);
      }
    }
    if (isa == Isa::Avx512) {
      attn_avx512::backward_task(g, b, kh, pk, vt, delta, bufs, bufs + 8 * w, bufs + 16 * w, dout, lse32, lse64, dq, dk, dv);
    } else {
      attn_avx2::backward_task(g, b, kh, pk, vt, delta, bufs, bufs + 8 * w, bufs + 16 * w, dout, lse32, lse64, dq, dk, dv);
    }
  });
  return std::find(failed.begin(), failed.end(), 1) == failed.end();
}

}  // namespace pleat
