// Flash-tiled causal GQA attention, forward and backward, in float32 (FlashAttention's online
// softmax: each query row keeps its running max, sum of exponentials and weighted sum of values
// while key tiles stream through shared memory; nothing of size Sq x Sk is ever stored). The
// CUDA kernels (attention.cu) run these functions with one thread a row (a query row forward and
// for dq, a key row for dk and dv) and a tile of 64 rows a block; `forward_host` / `backward_host`
// run the same functions on the host over every block, thread by thread between the block's
// synchronisations, which is what pleat_kernel_emulation checks against the CPU's float64
// reference on machines without a GPU (properties/native/attentionTwins.ts). The device's expf
// and logf may differ from the host's in their last bit; every other operation is the same
// rounded float32 operation on both.
//
//   forward   out[b, i, h] = sum over visible j of softmax_j(scale q_i . k_j) v_j, and the row's
//             lse = max + log(sum exp(s - max)) (-inf, and out 0, for a row that sees no key)
//   backward  delta_i = dout_i . out_i (float64, attention_element.h); dq_i = scale sum_j ds_ij k_j,
//             dk_j = scale sum over the group's heads and i of ds_ij q_i, dv_j = sum p_ij dout_i,
//             with p = exp(s - lse), ds = p (dout_i . v_j - delta_i); deterministic (each output
//             row summed by one thread in a fixed order: no atomics)
//
// Masks: attention_element.h's attn_visible (positions and query first keys). Tiles no row of a
// block sees are skipped where the default positions make that cheap to know: past the diagonal,
// and before the block's lowest first key (the start of its earliest document).
//
// Rows (d and dv) of at most kMaxWidth floats; wider heads take the element kernels
// (attention_element.h). Shared memory a block: one tile of keys and values (forward, dq) or
// of queries, output gradients and their row statistics (dk, dv), at most 48 KB.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "attention_element.h"

namespace pleat {
namespace flash {

using element::AttnShape;

constexpr unsigned kRows = 64;            // threads (rows) a block
constexpr size_t kMaxWidth = 256;         // the widest d and dv the tiled kernels take
constexpr size_t kSharedFloats = 12288;   // 48 KB of shared memory a block
constexpr float kNoRow = -INFINITY;

#ifdef __CUDA_ARCH__
PLEAT_HD inline float ffma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
PLEAT_HD inline float fmul(float a, float b) { return __fmul_rn(a, b); }
PLEAT_HD inline float fsub(float a, float b) { return __fsub_rn(a, b); }
PLEAT_HD inline float fadd(float a, float b) { return __fadd_rn(a, b); }
PLEAT_HD inline float fdiv(float a, float b) { return __fdiv_rn(a, b); }
PLEAT_HD inline float fexp(float x) { return expf(x); }
PLEAT_HD inline float flog(float x) { return logf(x); }
#else
inline float ffma(float a, float b, float c) { return std::fma(a, b, c); }
inline float fmul(float a, float b) { return a * b; }
inline float fsub(float a, float b) { return a - b; }
inline float fadd(float a, float b) { return a + b; }
inline float fdiv(float a, float b) { return a / b; }
inline float fexp(float x) { return std::exp(x); }
inline float flog(float x) { return std::log(x); }
#endif

// Whether the tiled kernels take this shape.
PLEAT_HD inline bool fits(const AttnShape& a) { return a.d <= kMaxWidth && a.dv <= kMaxWidth && a.hkv > 0 && a.hq % a.hkv == 0; }

// Rows a tile when each row takes `width` floats of shared memory: as many as fit, 1 to 64.
PLEAT_HD inline size_t tile_rows(size_t width) {
  const size_t r = width == 0 ? kRows : kSharedFloats / width;
  return r < 1 ? 1 : (r > kRows ? kRows : r);
}

// The last query row of the block whose rows start at i0.
PLEAT_HD inline size_t last_query(const AttnShape& a, size_t i0) { return (i0 + kRows < a.sq ? i0 + kRows : a.sq) - 1; }

// Whether no query up to `last_query` sees a key from `first_key` on: causal with the default
// positions (a query sees no later key), so a block skips such tiles.
PLEAT_HD inline bool past_diagonal(const AttnShape& a, size_t last_query, size_t first_key) { return a.causal && a.qpos == nullptr && a.kpos == nullptr && first_key > last_query; }

// The lowest first key of queries [i0, last] of batch entry b, as a key index: with first keys
// and the default key positions (key j at position j) no query of them sees a key before it, so
// their key tiles start there (0 otherwise; at most Sk). Every thread of a block computes it.
PLEAT_HD inline size_t first_seen_key(const AttnShape& a, size_t b, size_t i0, size_t last) {
  if (!a.causal || a.qfirst == nullptr || a.kpos != nullptr) return 0;
  int32_t lo = INT32_MAX;
  for (size_t i = i0; i <= last; ++i) {
    const int32_t f = element::attn_first_key(a, b, i);
    lo = f < lo ? f : lo;
  }
  return lo <= 0 ? 0 : (static_cast<size_t>(lo) < a.sk ? static_cast<size_t>(lo) : a.sk);
}

// Whether no query of [i0, i0 + n) sees a key up to `last_key`: each one's first key is past it
// (first keys with the default key positions), so a block of keys ending there skips the tile.
PLEAT_HD inline bool before_first_keys(const AttnShape& a, size_t b, size_t i0, size_t n, size_t last_key) {
  return n > 0 && first_seen_key(a, b, i0, i0 + n - 1) > last_key;
}

// x . y over n floats, e ascending, fused multiply-adds.
PLEAT_HD inline float dot(const float* x, const float* y, size_t n) {
  float s = 0.0f;
  for (size_t e = 0; e < n; ++e) s = ffma(x[e], y[e], s);
  return s;
}

// ---- forward and dq: a thread a query row, key tiles in shared memory -------------------------

// The key and value rows [j0, j0 + n) of kv head kh into ks [n, d] and vs [n, dv]: thread t of `threads`.
PLEAT_HD inline void load_keys(const AttnShape& a, const float* k, const float* v, size_t b, size_t kh, size_t j0, size_t n, float* ks, float* vs, size_t t,
                               size_t threads) {
  for (size_t x = t; x < n * a.d; x += threads) ks[x] = k[element::attn_k_off(a, b, j0 + x / a.d, kh) + x % a.d];
  for (size_t x = t; x < n * a.dv; x += threads) vs[x] = v[element::attn_v_off(a, b, j0 + x / a.dv, kh) + x % a.dv];
}

// A query row's running state in the forward.
struct ForwardRow {
  float q[kMaxWidth];
  float acc[kMaxWidth];
  float max;
  float sum;
  size_t b, i, h;
  bool real;  // a row of the tensor (the last block's threads past Sq have none)
};

PLEAT_HD inline void forward_begin(const AttnShape& a, const float* q, size_t b, size_t h, size_t i, ForwardRow& r) {
  r.b = b, r.i = i, r.h = h, r.real = i < a.sq;
  r.max = kNoRow, r.sum = 0.0f;
  for (size_t e = 0; e < a.dv; ++e) r.acc[e] = 0.0f;
  if (r.real)
    for (size_t e = 0; e < a.d; ++e) r.q[e] = q[element::attn_q_off(a, b, i, h) + e];
}

// The row against keys [j0, j0 + n) (ks, vs as load_keys left them): the online softmax, j ascending.
PLEAT_HD inline void key_tile(const AttnShape& a, size_t j0, size_t n, const float* ks, const float* vs, ForwardRow& r) {
  if (!r.real) return;
  for (size_t jj = 0; jj < n; ++jj) {
    if (!element::attn_visible(a, r.b, r.i, j0 + jj)) continue;
    const float s = fmul(a.scale, dot(r.q, ks + jj * a.d, a.d));
    if (s > r.max) {
      // A new maximum: what was summed so far is rescaled to it (exp(-inf) = 0 on the first key).
      const float c = fexp(fsub(r.max, s));
      r.sum = fmul(r.sum, c);
      for (size_t e = 0; e < a.dv; ++e) r.acc[e] = fmul(r.acc[e], c);
      r.max = s;
    }
    const float p = fexp(fsub(s, r.max));
    r.sum = fadd(r.sum, p);
    const float* vr = vs + jj * a.dv;
    for (size_t e = 0; e < a.dv; ++e) r.acc[e] = ffma(p, vr[e], r.acc[e]);
  }
}

// out's row and the row's lse (into lse32 or lse64 when given).
PLEAT_HD inline void forward_end(const AttnShape& a, const ForwardRow& r, float* out, float* lse32, double* lse64) {
  if (!r.real) return;
  const bool seen = r.sum > 0.0f;
  float* o = out + element::attn_o_off(a, r.b, r.i, r.h);
  for (size_t e = 0; e < a.dv; ++e) o[e] = seen ? fdiv(r.acc[e], r.sum) : 0.0f;
  const float lse = seen ? fadd(r.max, flog(r.sum)) : kNoRow;
  const size_t row = element::attn_row(a, r.b, r.h, r.i);
  if (lse32 != nullptr) lse32[row] = lse;
  if (lse64 != nullptr) lse64[row] = static_cast<double>(lse);
}

// A query row's state for dq.
struct GradQueryRow {
  float q[kMaxWidth];
  float dout[kMaxWidth];
  float dq[kMaxWidth];
  float lse;
  float delta;
  size_t b, i, h;
  bool real;
};

PLEAT_HD inline void dq_begin(const AttnShape& a, const float* q, const float* dout, const float* lse32, const double* lse64, const double* delta, size_t b,
                              size_t h, size_t i, GradQueryRow& r) {
  r.b = b, r.i = i, r.h = h, r.real = i < a.sq;
  for (size_t e = 0; e < a.d; ++e) r.dq[e] = 0.0f;
  if (!r.real) return;
  const size_t row = element::attn_row(a, b, h, i);
  r.lse = static_cast<float>(element::attn_lse(lse32, lse64, row));
  r.delta = static_cast<float>(delta[row]);
  for (size_t e = 0; e < a.d; ++e) r.q[e] = q[element::attn_q_off(a, b, i, h) + e];
  for (size_t e = 0; e < a.dv; ++e) r.dout[e] = dout[element::attn_o_off(a, b, i, h) + e];
}

// The row against keys [j0, j0 + n): its dq terms, j ascending.
PLEAT_HD inline void key_tile(const AttnShape& a, size_t j0, size_t n, const float* ks, const float* vs, GradQueryRow& r) {
  if (!r.real || r.lse == kNoRow) return;
  for (size_t jj = 0; jj < n; ++jj) {
    if (!element::attn_visible(a, r.b, r.i, j0 + jj)) continue;
    const float* kr = ks + jj * a.d;
    const float p = fexp(fsub(fmul(a.scale, dot(r.q, kr, a.d)), r.lse));
    const float ds = fmul(p, fsub(dot(r.dout, vs + jj * a.dv, a.dv), r.delta));
    for (size_t e = 0; e < a.d; ++e) r.dq[e] = ffma(ds, kr[e], r.dq[e]);
  }
}

PLEAT_HD inline void dq_end(const AttnShape& a, const GradQueryRow& r, float* dq) {
  if (!r.real) return;
  float* g = dq + element::attn_q_off(a, r.b, r.i, r.h);
  for (size_t e = 0; e < a.d; ++e) g[e] = fmul(a.scale, r.dq[e]);
}

// ---- dk and dv: a thread a key row, query tiles in shared memory ------------------------------

// The last key of the block of key rows starting at j0.
PLEAT_HD inline size_t last_key(const AttnShape& a, size_t j0) { return (j0 + kRows < a.sk ? j0 + kRows : a.sk) - 1; }

// Floats a query row takes in shared memory for dk / dv: q, dout, lse and delta.
PLEAT_HD inline size_t query_width(const AttnShape& a) { return a.d + a.dv + 2; }

// The query rows [i0, i0 + n) of head h into qs [n, d], dos [n, dv], ls [n] (lse, -inf for a row
// that saw no key) and ds [n] (delta): thread t of `threads`.
PLEAT_HD inline void load_queries(const AttnShape& a, const float* q, const float* dout, const float* lse32, const double* lse64, const double* delta, size_t b,
                                  size_t h, size_t i0, size_t n, float* qs, float* dos, float* ls, float* ds, size_t t, size_t threads) {
  for (size_t x = t; x < n * a.d; x += threads) qs[x] = q[element::attn_q_off(a, b, i0 + x / a.d, h) + x % a.d];
  for (size_t x = t; x < n * a.dv; x += threads) dos[x] = dout[element::attn_o_off(a, b, i0 + x / a.dv, h) + x % a.dv];
  for (size_t x = t; x < n; x += threads) {
    const size_t row = element::attn_row(a, b, h, i0 + x);
    ls[x] = static_cast<float>(element::attn_lse(lse32, lse64, row));
    ds[x] = static_cast<float>(delta[row]);
  }
}

// A key row's state for dk and dv.
struct GradKeyRow {
  float k[kMaxWidth];
  float v[kMaxWidth];
  float dk[kMaxWidth];
  float dv[kMaxWidth];
  size_t b, j, kh;
  bool real;
};

PLEAT_HD inline void dkv_begin(const AttnShape& a, const float* k, const float* v, size_t b, size_t kh, size_t j, GradKeyRow& r) {
  r.b = b, r.j = j, r.kh = kh, r.real = j < a.sk;
  for (size_t e = 0; e < a.d; ++e) r.dk[e] = 0.0f;
  for (size_t e = 0; e < a.dv; ++e) r.dv[e] = 0.0f;
  if (!r.real) return;
  for (size_t e = 0; e < a.d; ++e) r.k[e] = k[element::attn_k_off(a, b, j, kh) + e];
  for (size_t e = 0; e < a.dv; ++e) r.v[e] = v[element::attn_v_off(a, b, j, kh) + e];
}

// The key row against queries [i0, i0 + n) of one head (as load_queries left them), i ascending.
PLEAT_HD inline void dkv_tile(const AttnShape& a, size_t i0, size_t n, const float* qs, const float* dos, const float* ls, const float* ds, GradKeyRow& r) {
  if (!r.real) return;
  for (size_t ii = 0; ii < n; ++ii) {
    if (ls[ii] == kNoRow || !element::attn_visible(a, r.b, i0 + ii, r.j)) continue;
    const float* qr = qs + ii * a.d;
    const float* dor = dos + ii * a.dv;
    const float p = fexp(fsub(fmul(a.scale, dot(qr, r.k, a.d)), ls[ii]));
    for (size_t e = 0; e < a.dv; ++e) r.dv[e] = ffma(p, dor[e], r.dv[e]);
    const float g = fmul(p, fsub(dot(dor, r.v, a.dv), ds[ii]));
    for (size_t e = 0; e < a.d; ++e) r.dk[e] = ffma(g, qr[e], r.dk[e]);
  }
}

PLEAT_HD inline void dkv_end(const AttnShape& a, const GradKeyRow& r, float* dk, float* dv) {
  if (!r.real) return;
  float* gk = dk + element::attn_k_off(a, r.b, r.j, r.kh);
  float* gv = dv + element::attn_v_off(a, r.b, r.j, r.kh);
  for (size_t e = 0; e < a.d; ++e) gk[e] = fmul(a.scale, r.dk[e]);
  for (size_t e = 0; e < a.dv; ++e) gv[e] = r.dv[e];
}

// ---- the same on the host: every block, its threads one after another between synchronisations ----

#ifndef __CUDA_ARCH__
// A block of query rows starting at i0 of head h through every key tile it sees (key_tile), its
// threads one after another between the loads.
template <class Row>
void key_tiles_host(const AttnShape& a, const float* k, const float* v, size_t b, size_t h, size_t i0, std::vector<Row>& rows) {
  const size_t bc = tile_rows(a.d + a.dv);
  std::vector<float> ks(bc * a.d), vs(bc * a.dv);
  for (size_t j0 = first_seen_key(a, b, i0, last_query(a, i0)); j0 < a.sk && !past_diagonal(a, last_query(a, i0), j0); j0 += bc) {
    const size_t n = a.sk - j0 < bc ? a.sk - j0 : bc;
    for (size_t t = 0; t < kRows; ++t) load_keys(a, k, v, b, h / (a.hq / a.hkv), j0, n, ks.data(), vs.data(), t, kRows);
    for (size_t t = 0; t < kRows; ++t) key_tile(a, j0, n, ks.data(), vs.data(), rows[t]);
  }
}

inline void forward_host(const AttnShape& a, const float* q, const float* k, const float* v, float* out, float* lse32, double* lse64) {
  std::vector<ForwardRow> rows(kRows);
  for (size_t b = 0; b < a.b; ++b)
    for (size_t h = 0; h < a.hq; ++h)
      for (size_t i0 = 0; i0 < a.sq; i0 += kRows) {
        for (size_t t = 0; t < kRows; ++t) forward_begin(a, q, b, h, i0 + t, rows[t]);
        key_tiles_host(a, k, v, b, h, i0, rows);
        for (size_t t = 0; t < kRows; ++t) forward_end(a, rows[t], out, lse32, lse64);
      }
}

// delta (B * Hq * Sq doubles) as the device computes it first (attention_delta_row), then dq, dk, dv.
inline void backward_host(const AttnShape& a, const float* q, const float* k, const float* v, const float* out, const float* dout, const float* lse32,
                          const double* lse64, float* dq, float* dk, float* dv) {
  const size_t rows_n = a.b * a.hq * a.sq;
  std::vector<double> delta(rows_n);
  for (size_t r = 0; r < rows_n; ++r) element::attention_delta_row(a, out, dout, delta.data(), r);
  std::vector<GradQueryRow> qrows(kRows);
  for (size_t b = 0; b < a.b; ++b)
    for (size_t h = 0; h < a.hq; ++h)
      for (size_t i0 = 0; i0 < a.sq; i0 += kRows) {
        for (size_t t = 0; t < kRows; ++t) dq_begin(a, q, dout, lse32, lse64, delta.data(), b, h, i0 + t, qrows[t]);
        key_tiles_host(a, k, v, b, h, i0, qrows);
        for (size_t t = 0; t < kRows; ++t) dq_end(a, qrows[t], dq);
      }
  const size_t bq = tile_rows(query_width(a));
  std::vector<float> qs(bq * a.d), dos(bq * a.dv), ls(bq), ds(bq);
  std::vector<GradKeyRow> krows(kRows);
  const size_t group = a.hq / a.hkv;
  for (size_t b = 0; b < a.b; ++b)
    for (size_t kh = 0; kh < a.hkv; ++kh)
      for (size_t j0 = 0; j0 < a.sk; j0 += kRows) {
        for (size_t t = 0; t < kRows; ++t) dkv_begin(a, k, v, b, kh, j0 + t, krows[t]);
        for (size_t h = kh * group; h < (kh + 1) * group; ++h)
          for (size_t i0 = 0; i0 < a.sq; i0 += bq) {
            const size_t n = a.sq - i0 < bq ? a.sq - i0 : bq;
            // Causal with default positions: queries before the block's first key see none of it,
            // nor do queries whose first keys are past its last.
            if (past_diagonal(a, i0 + n - 1, j0) || before_first_keys(a, b, i0, n, last_key(a, j0))) continue;
            for (size_t t = 0; t < kRows; ++t) load_queries(a, q, dout, lse32, lse64, delta.data(), b, h, i0, n, qs.data(), dos.data(), ls.data(), ds.data(), t, kRows);
            for (size_t t = 0; t < kRows; ++t) dkv_tile(a, i0, n, qs.data(), dos.data(), ls.data(), ds.data(), krows[t]);
          }
        for (size_t t = 0; t < kRows; ++t) dkv_end(a, krows[t], dk, dv);
      }
}
#endif

}  // namespace flash
}  // namespace pleat
