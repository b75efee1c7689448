// The per-element (per-row, per-token) work of the CUDA kernels in ops.cu that are grid-stride
// loops, as functions that compile for the device (nvcc) and for the host (any C++17 compiler):
// the kernels call them for their indices, and pleat_kernel_emulation (ops_emulation.cc) calls
// them for every index on the host, so the kernels' arithmetic, indexing and selection are
// checked against the CPU kernels on machines without a GPU (properties/native/
// CudaEmulation.prop.ts). Each float64 operation is rounded on its own: the device intrinsics
// (__dadd_rn, ...: no contraction into FMAs) and, on the host, the plain operators of a build
// without contraction (-ffp-contract=off, cuda/CMakeLists.txt). exp is the device's exp or the
// host's std::exp: the two may differ in a double's last bit, the one difference emulation
// cannot show.
//
//   gather_rows_element, swiglu_element, combine_rows_element (a token's column), adamw_element,
//   softmax_row (a row, one thread)
//   scatter_add_rows_element   a target row's column plus its sources in order (a CSR list)
//   combine_backward_rows_element, combine_backward_weight_element   the MoE unpermute's
//                           backward: one element of grad_rows, one row's grad_weights[j]
//   permute_rows_element, permute_prob_element   the MoE permute with its prob column / probsOut
//   rope_element            one pair of rope.h's rotation (k over b * s * heads * d / 2)
//   swiglu_backward_element rows.h swiglu_backward at i
//   rmsnorm_backward_*      rmsnorm_backward.cc: a row's coefficient (its dot product in
//                           order), a dx element, a dw column (its sum over rows in order)
//   ce_row_sum_exp_row, ce_grad_element   cross_entropy.h
//   router_token            moe/Router.ts select + probsFor for one token
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define PLEAT_HD __host__ __device__
#else
#define PLEAT_HD
#endif

namespace pleat {

// The router kernel's limits (its per-token arrays live in registers / local memory).
constexpr int kRouterMaxExperts = 512;
constexpr int kRouterMaxTopk = 32;

namespace element {

// One IEEE operation rounded on its own: the device's _rn intrinsic, the host's operator; and
// the library functions: the device's and the host's (exp and log may differ in their last bit).
#ifdef __CUDA_ARCH__
#define PLEAT_ROUNDED(T, name, intrinsic, op) \
  PLEAT_HD inline T name(T a, T b) { return intrinsic(a, b); }
#define PLEAT_LIBRARY(name, device, host) \
  PLEAT_HD inline double name(double x) { return device(x); }
#else
#define PLEAT_ROUNDED(T, name, intrinsic, op) \
  PLEAT_HD inline T name(T a, T b) { return a op b; }
#define PLEAT_LIBRARY(name, device, host) \
  PLEAT_HD inline double name(double x) { return host(x); }
#endif
PLEAT_ROUNDED(double, add, __dadd_rn, +)
PLEAT_ROUNDED(double, sub, __dsub_rn, -)
PLEAT_ROUNDED(double, mul, __dmul_rn, *)
PLEAT_ROUNDED(double, div, __ddiv_rn, /)
PLEAT_ROUNDED(float, fadd, __fadd_rn, +)
PLEAT_ROUNDED(float, fmul, __fmul_rn, *)
PLEAT_LIBRARY(sqrt_of, __dsqrt_rn, std::sqrt)
PLEAT_LIBRARY(exp_of, exp, std::exp)
PLEAT_LIBRARY(log_of, log, std::log)
PLEAT_LIBRARY(log1p_of, log1p, std::log1p)
#undef PLEAT_ROUNDED
#undef PLEAT_LIBRARY
PLEAT_HD inline bool is_nan(double x) { return x != x; }
PLEAT_HD inline double quiet_nan() {
  const uint64_t bits = 0x7ff8000000000000ULL;
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}
PLEAT_HD inline bool negative_zero(double x) { return x == 0.0 && 1.0 / x < 0.0; }
constexpr double kMinusInfinity = -HUGE_VAL;

// Math.max of two doubles: NaN if either is, +0 above -0 (commutative and associative).
PLEAT_HD inline double js_max(double m, double v) {
  if (is_nan(m) || is_nan(v)) return quiet_nan();
  if (v > m) return v;
  if (v == m && v == 0.0 && negative_zero(m) && !negative_zero(v)) return v;
  return m;
}

// Row r of softmax_rows (rows.h): the CPU's scalar path (rowwise.cc softmax_row_ref): the row's
// float max, exp in float64 of each element minus it (rounded to float into out), their float64
// sum ascending, then out[j] = float(out[j] / sum).
PLEAT_HD inline void softmax_row(const float* x, float* out, size_t cols, size_t r) {
  const float* row = x + r * cols;
  float* o = out + r * cols;
  float mx = -HUGE_VALF;
  for (size_t j = 0; j < cols; ++j) mx = row[j] > mx ? row[j] : mx;
  double sum = 0.0;
  for (size_t j = 0; j < cols; ++j) {
    const double e = exp_of(sub(static_cast<double>(row[j]), static_cast<double>(mx)));
    o[j] = static_cast<float>(e);
    sum = add(sum, e);
  }
  for (size_t j = 0; j < cols; ++j) o[j] = static_cast<float>(div(static_cast<double>(o[j]), sum));
}

PLEAT_HD inline void gather_rows_element(const float* src, const int32_t* index, float* out, size_t cols, size_t i) {
  const size_t r = i / cols, c = i - r * cols;
  out[i] = src[static_cast<size_t>(index[r]) * cols + c];
}

// The MoE permute (dispatch.h gather_rows_extra with a prob per row): element i of out [n,
// out_cols] is column c of src row index[r] (rows of `cols` floats), or with out_cols = cols + 1
// at c = cols the row's prob, probs[index[r] * experts + expert[r]].
PLEAT_HD inline void permute_rows_element(const float* src, size_t cols, const int32_t* index, float* out, size_t out_cols, const float* probs,
                                          const int32_t* expert, size_t experts, size_t i) {
  const size_t r = i / out_cols, c = i - r * out_cols;
  const size_t t = static_cast<size_t>(index[r]);
  out[i] = c < cols ? src[t * cols + c] : probs[t * experts + static_cast<size_t>(expert[r])];
}

// Row r's prob alone (permute's probsOut).
PLEAT_HD inline void permute_prob_element(const int32_t* index, const float* probs, const int32_t* expert, size_t experts, float* probs_out, size_t r) {
  probs_out[r] = probs[static_cast<size_t>(index[r]) * experts + static_cast<size_t>(expert[r])];
}

// swiglu_ref: g * sigmoid(g) * u in float64, rounded once.
PLEAT_HD inline void swiglu_element(const float* gate, const float* up, float* out, size_t i) {
  const double g = gate[i];
  const double e = exp_of(-fabs(g));
  const double sig = div(g >= 0.0 ? 1.0 : e, add(1.0, e));
  out[i] = static_cast<float>(mul(mul(g, sig), static_cast<double>(up[i])));
}

// rows.h scatter_add_rows at target row t, column c: out's value + its sources in increasing j
// (a CSR list), each add in float32; a row with no source is left as it is.
PLEAT_HD inline void scatter_add_rows_element(const float* src, const int32_t* offsets, const int32_t* order, size_t cols, float* out, size_t t, size_t c) {
  if (offsets[t] == offsets[t + 1]) return;
  float acc = out[t * cols + c];
  for (int32_t k = offsets[t]; k < offsets[t + 1]; ++k) acc = fadd(acc, src[static_cast<size_t>(order[k]) * cols + c]);
  out[t * cols + c] = acc;
}

// The MoE unpermute (dispatch.h combine_rows) at token t, column c: 0 + the token's rows in
// increasing j (a CSR list), each times its weight when given, in float32.
PLEAT_HD inline void combine_rows_element(const float* rows, size_t row_stride, const int32_t* token_offsets, const int32_t* token_rows,
                                          const float* weights, size_t cols, float* out, size_t t, size_t c) {
  float acc = 0.0f;
  for (int32_t k = token_offsets[t]; k < token_offsets[t + 1]; ++k) {
    const size_t j = static_cast<size_t>(token_rows[k]);
    const float r = rows[j * row_stride + c];
    acc = fadd(acc, weights != nullptr ? fmul(weights[j], r) : r);
  }
  out[t * cols + c] = acc;
}

// The MoE unpermute's backward (dispatch.h combine_backward), element i of grad_rows [n, cols]:
// g's row of token index[j] times row j's weight, one float32 product (fmul, so nvcc cannot
// fuse it with anything), in dispatch.cc's operand order.
PLEAT_HD inline void combine_backward_rows_element(const float* g, const int32_t* index, size_t cols, const float* weights, float* grad_rows, size_t i) {
  const size_t j = i / cols, c = i - j * cols;
  grad_rows[i] = fmul(g[static_cast<size_t>(index[j]) * cols + c], weights[j]);
}

// grad_weights[j] as dispatch.cc weight_grad: the float32 products g[index[j], c] * rows[j, c]
// summed in float64 from +0 in increasing column (one thread owns the row, so the order is
// the CPU's), rounded once to float32. With one column the product itself, as the CPU: there
// the tensor path has no broadcast to reduce, and +0 + (-0) would turn a -0 product into +0.
PLEAT_HD inline void combine_backward_weight_element(const float* g, const int32_t* index, size_t cols, const float* rows, float* grad_weights, size_t j) {
  const float* gj = g + static_cast<size_t>(index[j]) * cols;
  const float* r = rows + j * cols;
  if (cols == 1) {
    grad_weights[j] = fmul(gj[0], r[0]);
    return;
  }
  double acc = 0.0;
  for (size_t c = 0; c < cols; ++c) acc = add(acc, static_cast<double>(fmul(gj[c], r[c])));
  grad_weights[j] = static_cast<float>(acc);
}

// adamw.h's update of element k, each operation rounded on its own.
PLEAT_HD inline void adamw_element(double beta1, double beta2, double c1, double c2, double eps, double lr, double clip, double decay, float* w,
                                   const float* g, float* m, float* v, size_t k) {
  const double gi = mul(static_cast<double>(g[k]), clip);
  const double mk = add(mul(beta1, static_cast<double>(m[k])), mul(1 - beta1, gi));
  const double vk = add(mul(beta2, static_cast<double>(v[k])), mul(mul(1 - beta2, gi), gi));
  m[k] = static_cast<float>(mk);
  v[k] = static_cast<float>(vk);
  const double wi = static_cast<double>(w[k]);
  const double step = add(div(div(mk, c1), add(sqrt_of(div(vk, c2)), eps)), mul(decay, wi));
  w[k] = static_cast<float>(sub(wi, mul(lr, step)));
}

PLEAT_HD inline void rope_element(const float* x, const double* cos, const double* sin, float* out, size_t s, size_t heads, size_t half,
                                  size_t table_rows, double sign, size_t k) {
  const size_t i = k % half;
  const size_t token = k / half / heads;  // bi * s + si
  const size_t row = (table_rows == s ? token % s : token) * half + i;
  const size_t base = k / half * 2 * half;  // ((bi * s + si) * heads + h) * d
  const double c = cos[row];
  const double sn = mul(sign, sin[row]);
  const double a = x[base + i];
  const double e = x[base + i + half];
  out[base + i] = static_cast<float>(sub(mul(a, c), mul(e, sn)));
  out[base + i + half] = static_cast<float>(add(mul(e, c), mul(a, sn)));
}

PLEAT_HD inline void swiglu_backward_element(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t i) {
  const double x = gate[i];
  const double e = exp_of(-fabs(x));
  const double sig = div(x >= 0.0 ? 1.0 : e, add(1.0, e));
  const double g = grad[i];
  if (dgate != nullptr) {
    const double slope = add(1.0, mul(x, sub(1.0, sig)));
    dgate[i] = static_cast<float>(mul(mul(mul(g, static_cast<double>(up[i])), sig), slope));
  }
  if (dup != nullptr) dup[i] = static_cast<float>(mul(mul(g, x), sig));
}

PLEAT_HD inline void rmsnorm_backward_coefficient_row(const float* x, const float* w, const float* g, const double* rstd, size_t cols,
                                                      double* coefficient, size_t r) {
  const float* xr = x + r * cols;
  const float* gr = g + r * cols;
  double dot = 0;
  for (size_t j = 0; j < cols; ++j) dot = add(dot, mul(mul(static_cast<double>(gr[j]), static_cast<double>(w[j])), static_cast<double>(xr[j])));
  const double sr = rstd[r];
  coefficient[r] = div(mul(mul(sr, sr), dot), static_cast<double>(cols));
}

PLEAT_HD inline void rmsnorm_backward_dx_element(const float* x, const float* w, const float* g, const double* rstd, const double* coefficient,
                                                 size_t cols, float* dx, size_t i) {
  const size_t r = i / cols, j = i - r * cols;
  const double gw = mul(static_cast<double>(g[i]), static_cast<double>(w[j]));
  dx[i] = static_cast<float>(mul(rstd[r], sub(gw, mul(static_cast<double>(x[i]), coefficient[r]))));
}

PLEAT_HD inline void rmsnorm_backward_dw_column(const float* x, const float* g, const double* rstd, size_t rows, size_t cols, double* dw, size_t j) {
  double sum = 0;
  for (size_t r = 0; r < rows; ++r) sum = add(sum, mul(mul(static_cast<double>(g[r * cols + j]), static_cast<double>(x[r * cols + j])), rstd[r]));
  dw[j] = sum;
}

PLEAT_HD inline void ce_row_sum_exp_row(const float* x, size_t cols, const double* max, double* sum, size_t r) {
  const float* row = x + r * cols;
  double s = 0;
  for (size_t j = 0; j < cols; ++j) s = add(s, exp_of(sub(static_cast<double>(row[j]), max[r])));
  sum[r] = s;
}

PLEAT_HD inline void ce_grad_element(const float* x, size_t cols, const double* log_sum, const int32_t* targets, int32_t ignore, int64_t start,
                                     double scale, float* d, size_t i) {
  const size_t r = i / cols, j = i - r * cols;
  const int32_t t = targets[r];
  if (t == ignore) {
    d[i] = 0.0f;
    return;
  }
  const double p = exp_of(sub(static_cast<double>(x[i]), log_sum[r]));
  d[i] = static_cast<float>(mul(scale, sub(p, start + static_cast<int64_t>(j) == t ? 1.0 : 0.0)));
}

// TopK.ts's rule: v at a later index ranks above w only when strictly greater (NaN lowest).
PLEAT_HD inline bool beats(double v, double w) { return v > w || (is_nan(w) && !is_nan(v)); }

// Inserts (v, j) into the sorted best-first list of `filled` (at most k) entries; j ascending.
PLEAT_HD inline void insert_top(double v, int32_t j, double* best_v, int32_t* best_i, int k, int* filled) {
  if (k == 0 || (*filled == k && !beats(v, best_v[k - 1]))) return;
  int p = *filled == k ? k - 1 : *filled;
  while (p > 0 && beats(v, best_v[p - 1])) {
    best_v[p] = best_v[p - 1];
    best_i[p] = best_i[p - 1];
    --p;
  }
  best_v[p] = v;
  best_i[p] = j;
  if (*filled < k) ++*filled;
}

PLEAT_HD inline double sigmoid_of(double x) { return div(1.0, add(1.0, exp_of(-x))); }

// ScoreFunctions' sqrtsoftplus: sqrt(log(1 + e^x)), softplus without overflow (x + log1p(e^-x) above 0).
PLEAT_HD inline double sqrtsoftplus_of(double x) { return sqrt_of(x > 0 ? add(x, log1p_of(exp_of(-x))) : log1p_of(exp_of(x))); }

// The elementwise score function of router mode 2 (sigmoid) or 3 (sqrtsoftplus).
PLEAT_HD inline double elementwise_score(int mode, double x) { return mode == 3 ? sqrtsoftplus_of(x) : sigmoid_of(x); }

// Router.select and probsFor for token t: mode 0 softmax over all experts before the top-k, 1
// softmax over the top-k, 2 sigmoid and 3 sqrtsoftplus (+ bias for the selection); groups > 0:
// group-limited.
PLEAT_HD inline void router_token(const float* logits, int e, int k, int mode, int groups, int group_topk, const double* bias, double scale,
                                  int32_t* indices, float* probs, size_t t) {
  // Per-thread arrays live in local memory, which the driver reserves for every thread the
  // device can hold at once: the best lists hold at most k (<= kRouterMaxTopk) entries.
  double score[kRouterMaxExperts];
  double best_v[kRouterMaxTopk];
  int32_t best_i[kRouterMaxTopk];
  const float* x = logits + t * static_cast<size_t>(e);
  // Selection scores (Router.selectionScores).
  if (mode == 0) {
    double max = kMinusInfinity;
    for (int j = 0; j < e; ++j) max = js_max(max, x[j]);
    double sum = 0;
    for (int j = 0; j < e; ++j) {
      score[j] = exp_of(sub(static_cast<double>(x[j]), max));
      sum = add(sum, score[j]);
    }
    for (int j = 0; j < e; ++j) score[j] = div(score[j], sum);
  } else if (mode == 1) {
    for (int j = 0; j < e; ++j) score[j] = x[j];
  } else {
    for (int j = 0; j < e; ++j) score[j] = add(elementwise_score(mode, x[j]), bias != nullptr ? bias[j] : 0.0);
  }
  int32_t* chosen = indices + t * static_cast<size_t>(k);
  int filled = 0;
  if (groups > 0) {
    // Router.groupLimitedTopk: a group's score is its top floor(k / group_topk) summed best
    // first; the top group_topk groups are kept; the top k of their experts are chosen.
    const int per = e / groups, top = k / group_topk;
    double group_v[kRouterMaxExperts];
    int32_t group_i[kRouterMaxExperts];
    int kept = 0;
    for (int gi = 0; gi < groups; ++gi) {
      int n = 0;
      for (int j = 0; j < per; ++j) insert_top(score[gi * per + j], j, best_v, best_i, top, &n);
      double sum = 0;
      for (int j = 0; j < top; ++j) sum = add(sum, best_v[j]);
      insert_top(sum, gi, group_v, group_i, group_topk, &kept);
    }
    bool keep[kRouterMaxExperts];
    for (int gi = 0; gi < groups; ++gi) keep[gi] = false;
    for (int j = 0; j < group_topk; ++j) keep[group_i[j]] = true;
    for (int j = 0; j < e; ++j) insert_top(keep[j / per] ? score[j] : kMinusInfinity, j, best_v, best_i, k, &filled);
  } else {
    for (int j = 0; j < e; ++j) insert_top(score[j], j, best_v, best_i, k, &filled);
  }
  for (int j = 0; j < k; ++j) chosen[j] = best_i[j];
  // Probs (Router.probsFor): dense, zero off the selection, times the scaling factor.
  float* out = probs + t * static_cast<size_t>(e);
  for (int j = 0; j < e; ++j) out[j] = 0.0f;
  double q[kRouterMaxTopk];
  if (mode == 0) {
    for (int j = 0; j < k; ++j) q[j] = score[chosen[j]];
  } else if (mode == 1) {
    double max = kMinusInfinity;
    for (int j = 0; j < k; ++j) max = js_max(max, x[chosen[j]]);
    double sum = 0;
    for (int j = 0; j < k; ++j) {
      q[j] = exp_of(sub(static_cast<double>(x[chosen[j]]), max));
      sum = add(sum, q[j]);
    }
    for (int j = 0; j < k; ++j) q[j] = div(q[j], sum);
  } else {
    double sum = 0;
    for (int j = 0; j < k; ++j) {
      q[j] = elementwise_score(mode, x[chosen[j]]);
      sum = add(sum, q[j]);
    }
    if (k > 1) {
      for (int j = 0; j < k; ++j) q[j] = div(q[j], add(sum, 1e-20));
    }
  }
  for (int j = 0; j < k; ++j) out[chosen[j]] = static_cast<float>(mul(q[j], scale));
}

}  // namespace element
}  // namespace pleat
