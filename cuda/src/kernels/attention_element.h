// The per-element work of the CUDA attention kernels (ops.cu), for the device and the host as
// ops_element.h's functions are: each output element (and each row's statistics) is computed
// from the definition in float64, in the order of the CPU's float64 reference (attention.cc
// attention_forward_ref / attention_backward_ref), so pleat_kernel_emulation checks the kernels'
// arithmetic and indexing against the CPU's scalar path bit for bit (the device's exp and log may
// differ in their last bit). Correctness first: an output element re-reads its row's keys
// (O(Sk (D + Dv)) per element), so these kernels are checks and small shapes' fallback, not the
// flash-tiled kernels a GPU run at scale needs.
//
//   attention_row_stats   a query row's max, sum of exp and lse (row = (b * Hq + h) * Sq + i)
//   attention_out_element out[b, i, h, e] = sum over visible j, ascending, of exp(s_j - lse) v[j, e]
//   attention_delta_row   delta = dout_row . out_row
//   attention_dq_element, attention_dk_element, attention_dv_element   the backward's sums, each in
//                         the reference's order (dq: j ascending; dk, dv: h, then i ascending)
#pragma once

#include "ops_element.h"

namespace pleat {
namespace element {

// attention.h's AttnArgs without the tensors: shapes, scale, masking and positions.
struct AttnShape {
  size_t b, sq, sk, hq, hkv, d, dv;
  float scale;
  bool causal;
  const int32_t* qpos;  // null: 0..Sq-1; else Sq or B * Sq entries
  size_t qpos_len;
  const int32_t* kpos;
  size_t kpos_len;
  const int32_t* qfirst;  // null: no lower bound; else Sq or B * Sq entries, each query's lowest visible key position
  size_t qfirst_len;
};

PLEAT_HD inline size_t attn_q_off(const AttnShape& a, size_t b, size_t i, size_t h) { return ((b * a.sq + i) * a.hq + h) * a.d; }
PLEAT_HD inline size_t attn_k_off(const AttnShape& a, size_t b, size_t j, size_t kh) { return ((b * a.sk + j) * a.hkv + kh) * a.d; }
PLEAT_HD inline size_t attn_v_off(const AttnShape& a, size_t b, size_t j, size_t kh) { return ((b * a.sk + j) * a.hkv + kh) * a.dv; }
PLEAT_HD inline size_t attn_o_off(const AttnShape& a, size_t b, size_t i, size_t h) { return ((b * a.sq + i) * a.hq + h) * a.dv; }
PLEAT_HD inline size_t attn_row(const AttnShape& a, size_t b, size_t h, size_t i) { return (b * a.hq + h) * a.sq + i; }

// Query i's lowest visible key position: INT32_MIN (every key) without first keys.
PLEAT_HD inline int32_t attn_first_key(const AttnShape& a, size_t b, size_t i) {
  return a.qfirst == nullptr ? INT32_MIN : a.qfirst[a.qfirst_len == a.sq ? i : b * a.sq + i];
}

// Causal: key j is visible to query i iff first_key(i) <= kpos[j] <= qpos[i]; every key otherwise.
PLEAT_HD inline bool attn_visible(const AttnShape& a, size_t b, size_t i, size_t j) {
  if (!a.causal) return true;
  const int32_t qp = a.qpos == nullptr ? static_cast<int32_t>(i) : a.qpos[a.qpos_len == a.sq ? i : b * a.sq + i];
  const int32_t kp = a.kpos == nullptr ? static_cast<int32_t>(j) : a.kpos[a.kpos_len == a.sk ? j : b * a.sk + j];
  return kp <= qp && attn_first_key(a, b, i) <= kp;
}

// scale * (q_i . k_j) in float64, each product and sum rounded on its own, e ascending.
PLEAT_HD inline double attn_score(const AttnShape& a, const float* q, const float* k, size_t b, size_t i, size_t h, size_t j) {
  const float* qr = q + attn_q_off(a, b, i, h);
  const float* kr = k + attn_k_off(a, b, j, h / (a.hq / a.hkv));
  double dot = 0.0;
  for (size_t e = 0; e < a.d; ++e) dot = add(dot, mul(static_cast<double>(qr[e]), static_cast<double>(kr[e])));
  return mul(static_cast<double>(a.scale), dot);
}

// x . y over n floats in float64, ascending.
PLEAT_HD inline double attn_dot(const float* x, const float* y, size_t n) {
  double s = 0.0;
  for (size_t e = 0; e < n; ++e) s = add(s, mul(static_cast<double>(x[e]), static_cast<double>(y[e])));
  return s;
}

// Row `row`'s lse (-inf when it sees no key) and sum of exp(s_j - max) (0 then).
PLEAT_HD inline void attention_row_stats(const AttnShape& a, const float* q, const float* k, double* lse, double* sum_out, float* lse32, double* lse64,
                                         size_t row) {
  const size_t i = row % a.sq, h = row / a.sq % a.hq, b = row / a.sq / a.hq;
  double mx = kMinusInfinity;
  for (size_t j = 0; j < a.sk; ++j) {
    if (!attn_visible(a, b, i, j)) continue;
    const double s = attn_score(a, q, k, b, i, h, j);
    mx = mx < s ? s : mx;  // std::max(mx, s)
  }
  double sum = 0.0;
  for (size_t j = 0; j < a.sk; ++j) {
    if (attn_visible(a, b, i, j)) sum = add(sum, exp_of(sub(attn_score(a, q, k, b, i, h, j), mx)));
  }
  const double l = sum == 0.0 ? kMinusInfinity : add(mx, log_of(sum));
  lse[row] = l;
  sum_out[row] = sum;
  if (lse32 != nullptr) lse32[row] = static_cast<float>(l);
  if (lse64 != nullptr) lse64[row] = l;
}

// out element `idx` of [B, Sq, Hq, Dv].
PLEAT_HD inline void attention_out_element(const AttnShape& a, const float* q, const float* k, const float* v, const double* lse, const double* sum,
                                           float* out, size_t idx) {
  const size_t e = idx % a.dv, h = idx / a.dv % a.hq, i = idx / a.dv / a.hq % a.sq, b = idx / a.dv / a.hq / a.sq;
  const size_t row = attn_row(a, b, h, i);
  double acc = 0.0;
  if (sum[row] > 0.0) {
    const size_t kh = h / (a.hq / a.hkv);
    for (size_t j = 0; j < a.sk; ++j) {
      if (!attn_visible(a, b, i, j)) continue;
      const double p = exp_of(sub(attn_score(a, q, k, b, i, h, j), lse[row]));
      acc = add(acc, mul(p, static_cast<double>(v[attn_v_off(a, b, j, kh) + e])));
    }
  }
  out[idx] = static_cast<float>(acc);
}

// delta of row `row`: dout_row . out_row in float64.
PLEAT_HD inline void attention_delta_row(const AttnShape& a, const float* out, const float* dout, double* delta, size_t row) {
  const size_t i = row % a.sq, h = row / a.sq % a.hq, b = row / a.sq / a.hq;
  delta[row] = attn_dot(dout + attn_o_off(a, b, i, h), out + attn_o_off(a, b, i, h), a.dv);
}

// The row's lse as the backward reads it (float32 or float64 storage).
PLEAT_HD inline double attn_lse(const float* lse32, const double* lse64, size_t row) { return lse32 != nullptr ? static_cast<double>(lse32[row]) : lse64[row]; }

// p and ds of (row of (b, i, h), key j): p = exp(s - lse), ds = scale * p * (dp - delta).
PLEAT_HD inline void attn_p_ds(const AttnShape& a, const float* q, const float* k, const float* v, const float* dout, double lse, double delta, size_t b,
                               size_t i, size_t h, size_t j, double* p, double* ds) {
  const size_t kh = h / (a.hq / a.hkv);
  const double dp = attn_dot(dout + attn_o_off(a, b, i, h), v + attn_v_off(a, b, j, kh), a.dv);
  *p = exp_of(sub(attn_score(a, q, k, b, i, h, j), lse));
  *ds = mul(mul(static_cast<double>(a.scale), *p), sub(dp, delta));
}

// dq element `idx` of [B, Sq, Hq, D].
PLEAT_HD inline void attention_dq_element(const AttnShape& a, const float* q, const float* k, const float* v, const float* dout, const float* lse32,
                                          const double* lse64, const double* delta, float* dq, size_t idx) {
  const size_t e = idx % a.d, h = idx / a.d % a.hq, i = idx / a.d / a.hq % a.sq, b = idx / a.d / a.hq / a.sq;
  const size_t row = attn_row(a, b, h, i), kh = h / (a.hq / a.hkv);
  const double lse = attn_lse(lse32, lse64, row);
  double acc = 0.0;
  if (lse != kMinusInfinity) {
    for (size_t j = 0; j < a.sk; ++j) {
      if (!attn_visible(a, b, i, j)) continue;
      double p = 0.0, ds = 0.0;
      attn_p_ds(a, q, k, v, dout, lse, delta[row], b, i, h, j, &p, &ds);
      acc = add(acc, mul(ds, static_cast<double>(k[attn_k_off(a, b, j, kh) + e])));
    }
  }
  dq[idx] = static_cast<float>(acc);
}

// dk (with_v false) or dv (true) element `idx` of [B, Sk, Hkv, D or Dv]: the group's query heads
// h ascending, then queries i ascending, as the reference adds them.
PLEAT_HD inline void attention_dkv_element(const AttnShape& a, const float* q, const float* k, const float* v, const float* dout, const float* lse32,
                                           const double* lse64, const double* delta, bool with_v, float* grad, size_t idx) {
  const size_t width = with_v ? a.dv : a.d;
  const size_t e = idx % width, kh = idx / width % a.hkv, j = idx / width / a.hkv % a.sk, b = idx / width / a.hkv / a.sk;
  const size_t group = a.hq / a.hkv;
  double acc = 0.0;
  for (size_t h = kh * group; h < (kh + 1) * group; ++h) {
    for (size_t i = 0; i < a.sq; ++i) {
      const size_t row = attn_row(a, b, h, i);
      const double lse = attn_lse(lse32, lse64, row);
      if (lse == kMinusInfinity || !attn_visible(a, b, i, j)) continue;
      double p = 0.0, ds = 0.0;
      attn_p_ds(a, q, k, v, dout, lse, delta[row], b, i, h, j, &p, &ds);
      acc = with_v ? add(acc, mul(p, static_cast<double>(dout[attn_o_off(a, b, i, h) + e]))) : add(acc, mul(ds, static_cast<double>(q[attn_q_off(a, b, i, h) + e])));
    }
  }
  grad[idx] = static_cast<float>(acc);
}

}  // namespace element
}  // namespace pleat
