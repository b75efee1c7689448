// pleat_kernel_emulation: runs the CUDA kernels' per-element functions (ops_element.h) on the
// host over every index, in order (a grid of one thread), so their arithmetic, indexing and
// selection can be checked against the CPU kernels where no GPU runs
// (properties/native/CudaEmulation.prop.ts). What it cannot check: the device's exp (its last
// bit), the launch shapes and the block reductions (ce_row_max's tree, the forward RMSNorm).
//
// Usage: pleat_kernel_emulation OP < request > reply, little-endian binary:
//   rope     request f64[6] {b, s, heads, d, tableRows, sign}, f32 x[b s heads d], f64 cos[tableRows d/2],
//            f64 sin[tableRows d/2]                                   reply f32 out[b s heads d]
//   swiglu_backward  f64[1] {n}, f32 gate[n], up[n], grad[n]          reply f32 dgate[n], dup[n]
//   rmsnorm_backward f64[2] {rows, cols}, f32 x[rows cols], w[cols], g[rows cols], f64 rstd[rows]
//                                                                     reply f32 dx[rows cols], f64 dw[cols]
//   cross_entropy    f64[5] {rows, cols, ignore, start, scale}, f32 x[rows cols], f64 max[rows],
//            f64 logSum[rows], i32 targets[rows]                      reply f64 sum[rows], f32 d[rows cols]
//   router   f64[8] {tokens, experts, topk, mode, groups, groupTopk, hasBias, scale}, f32
//            logits[tokens experts], f64 bias[experts] (when hasBias)  reply i32 indices[tokens topk],
//                                                                     f32 probs[tokens experts]
//   scatter_add_rows  f64[3] {n, targets, cols}, f32 src[n cols], i32 index[n], f32 out[targets cols]
//                                                                     reply f32 out + the scatter
//   softmax_rows  f64[2] {rows, cols}, f32 x[rows cols]                 reply f32 out[rows cols]
//   gather_rows  f64[3] {srcRows, n, cols}, f32 src[srcRows cols], i32 index[n]   reply f32 out[n cols]
//   permute_rows  f64[5] {srcRows, n, cols, outCols, experts (0: no probs)}, f32 src[srcRows cols],
//            i32 index[n], f32 probs[srcRows experts], i32 expert[n]  reply f32 out[n outCols],
//                                                                     f32 probsOut[n] (with probs)
//   swiglu   f64[1] {n}, f32 gate[n], up[n]                          reply f32 out[n]
//   elementwise  f64[5] {op, kind, n, width, s}, f32 a[n], f32 b[n, width or n / width by kind]
//            reply f32 binary(op, kind, a, b)[n], a * s [n], sumRows(a, width)[n / width],
//            sumSuffix(a, width)[width]  (width > 0 dividing n)
//   combine_rows  f64[5] {n, rowCols, tokens, cols, hasWeights}, f32 rows[n rowCols], i32
//            offsets[tokens + 1], i32 order[n] (each token's rows, CSR), f32 weights[n]
//                                                                     reply f32 out[tokens cols]
//   combine_backward  f64[5] {tokens, n, cols, wantRows, wantWeights}, f32 g[tokens cols], i32
//            index[n], f32 weights[n], rows[n cols]              reply f32 gradRows[n cols] (when
//                                                                     wantRows), gradWeights[n] (when wantWeights)
//   swap_dims  f64[5] {a, n0, b, n1, c}, f32 src[a n0 b n1 c]        reply f32 out: src's n0 and n1
//            dims exchanged
//   round_bf16  f64[1] {n}, f32 src[n]                                reply f32 out[n]: src rounded
//            to bfloat16 (bf16.h's rule) in float32 storage
//   sum_squares  f64[1] {n}, f32 x[n]                                  reply f64[1]: the sum of x[i]^2
//            in sum_squares_element.h's block order
//   adamw    f64[9] {n, beta1, beta2, c1, c2, eps, lr, clip, decay}, f32 w[n], g[n], m[n], v[n]
//                                                                     reply f32 w[n], m[n], v[n]
//   attention  f64[12] {b, sq, sk, hq, hkv, d, dv, scale, causal, qposLen, kposLen, qfirstLen}, f32
//            q, k, v, i32 qpos[qposLen], kpos[kposLen], qfirst[qfirstLen] (each length 0: none)
//                                                                     reply f32 out, f64 lse[b hq sq]
//   attention_backward  f64[13] {the same, lse32}, f32 q, k, v, out, dout, lse (f32 when lse32,
//            else f64) [b hq sq], i32 qpos, kpos, qfirst               reply f32 dq, dk, dv
//   attention_flash, attention_flash_backward  the same requests and replies, through the flash-tiled
//            kernels' functions (attention_flash.h: forward_host, backward_host; d and dv at most 256)
//   gated_activation, attention_sinks  gated_sinks_emulation.cc (its header has their formats)
// Exit 2 on an unknown op or a short or inconsistent request.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "emulation_io.h"
#include "attention_element.h"
#include "attention_flash.h"
#include "elementwise_element.h"
#include "ops_element.h"
#include "../row_lists.h"
#include "sum_squares_element.h"

using pleat::emulation::count;
using pleat::emulation::give;
using pleat::emulation::short_read;
using pleat::emulation::take;

// gated_sinks_emulation.cc: the exit status of one of its ops, -1 for any other op.
int gated_sinks_emulation(const std::string& op);

int main(int argc, char** argv) {
  using namespace pleat::element;
  const std::string op = argc > 1 ? argv[1] : "";
  if (op == "rope") {
    const auto h = take<double>(6);
    if (short_read) return 2;
    const size_t b = count(h[0]), s = count(h[1]), heads = count(h[2]), d = count(h[3]), rows = count(h[4]);
    const auto x = take<float>(b * s * heads * d);
    const auto cos = take<double>(rows * (d / 2));
    const auto sin = take<double>(rows * (d / 2));
    if (short_read) return 2;
    std::vector<float> out(x.size());
    for (size_t k = 0; k < b * s * heads * (d / 2); ++k) rope_element(x.data(), cos.data(), sin.data(), out.data(), s, heads, d / 2, rows, h[5], k);
    give(out);
  } else if (op == "elementwise") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const int bop = static_cast<int>(h[0]), kind = static_cast<int>(h[1]);
    const size_t n = count(h[2]), width = count(h[3]);
    if (width == 0 || n % width != 0 || bop < 0 || bop > 3 || kind < 0 || kind > 2) return 2;
    const auto a = take<float>(n), b = take<float>(kind == 0 ? n : (kind == 1 ? width : n / width));
    if (short_read) return 2;
    std::vector<float> binary(n), scaled(n), rows(n / width), suffix(width);
    for (size_t i = 0; i < n; ++i) binary_element(bop, kind, a.data(), b.data(), binary.data(), width, i);
    for (size_t i = 0; i < n; ++i) scale_element(a.data(), h[4], scaled.data(), i);
    for (size_t r = 0; r < n / width; ++r) sum_rows_row(a.data(), rows.data(), width, r);
    for (size_t j = 0; j < width; ++j) sum_suffix_column(a.data(), suffix.data(), n, width, j);
    give(binary);
    give(scaled);
    give(rows);
    give(suffix);
  } else if (op == "swiglu_backward") {
    const auto h = take<double>(1);
    if (short_read) return 2;
    const size_t n = count(h[0]);
    const auto gate = take<float>(n), up = take<float>(n), grad = take<float>(n);
    if (short_read) return 2;
    std::vector<float> dgate(n), dup(n);
    for (size_t i = 0; i < n; ++i) swiglu_backward_element(gate.data(), up.data(), grad.data(), dgate.data(), dup.data(), i);
    give(dgate);
    give(dup);
  } else if (op == "rmsnorm_backward") {
    const auto h = take<double>(2);
    if (short_read) return 2;
    const size_t rows = count(h[0]), cols = count(h[1]);
    const auto x = take<float>(rows * cols), w = take<float>(cols), g = take<float>(rows * cols);
    const auto rstd = take<double>(rows);
    if (short_read) return 2;
    std::vector<double> coefficient(rows), dw(cols);
    std::vector<float> dx(rows * cols);
    for (size_t r = 0; r < rows; ++r) rmsnorm_backward_coefficient_row(x.data(), w.data(), g.data(), rstd.data(), cols, coefficient.data(), r);
    for (size_t i = 0; i < rows * cols; ++i) rmsnorm_backward_dx_element(x.data(), w.data(), g.data(), rstd.data(), coefficient.data(), cols, dx.data(), i);
    for (size_t j = 0; j < cols; ++j) rmsnorm_backward_dw_column(x.data(), g.data(), rstd.data(), rows, cols, dw.data(), j);
    give(dx);
    give(dw);
  } else if (op == "cross_entropy") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const size_t rows = count(h[0]), cols = count(h[1]);
    const auto x = take<float>(rows * cols);
    const auto max = take<double>(rows), log_sum = take<double>(rows);
    const auto targets = take<int32_t>(rows);
    if (short_read) return 2;
    std::vector<double> sum(rows);
    std::vector<float> d(rows * cols);
    for (size_t r = 0; r < rows; ++r) ce_row_sum_exp_row(x.data(), cols, max.data(), sum.data(), r);
    for (size_t i = 0; i < rows * cols; ++i) {
      ce_grad_element(x.data(), cols, log_sum.data(), targets.data(), static_cast<int32_t>(h[2]), static_cast<int64_t>(h[3]), h[4], d.data(), i);
    }
    give(sum);
    give(d);
  } else if (op == "router") {
    const auto h = take<double>(8);
    if (short_read) return 2;
    const size_t tokens = count(h[0]);
    const int e = static_cast<int>(h[1]), k = static_cast<int>(h[2]);
    if (e < 1 || e > pleat::kRouterMaxExperts || k < 1 || k > e || k > pleat::kRouterMaxTopk) return 2;
    const auto logits = take<float>(tokens * static_cast<size_t>(e));
    const auto bias = take<double>(h[6] != 0 ? static_cast<size_t>(e) : 0);
    if (short_read) return 2;
    std::vector<int32_t> indices(tokens * static_cast<size_t>(k));
    std::vector<float> probs(logits.size());
    for (size_t t = 0; t < tokens; ++t) {
      router_token(logits.data(), e, k, static_cast<int>(h[3]), static_cast<int>(h[4]), static_cast<int>(h[5]), bias.empty() ? nullptr : bias.data(),
                   h[7], indices.data(), probs.data(), t);
    }
    give(indices);
    give(probs);
  } else if (op == "scatter_add_rows") {
    const auto h = take<double>(3);
    if (short_read) return 2;
    const size_t n = count(h[0]), targets = count(h[1]), cols = count(h[2]);
    const auto src = take<float>(n * cols);
    const auto index = take<int32_t>(n);
    auto out = take<float>(targets * cols);
    if (short_read) return 2;
    // The binding's lists: each target's sources in increasing i.
    pleat::RowLists lists;
    if (pleat::build_row_lists(index.data(), n, targets, &lists) != n) return 2;
    const int32_t *offsets = lists.offsets.data(), *order = lists.order.data();
    for (size_t t = 0; t < targets; ++t)
      for (size_t c = 0; c < cols; ++c) scatter_add_rows_element(src.data(), offsets, order, cols, out.data(), t, c);
    give(out);
  } else if (op == "softmax_rows") {
    const auto h = take<double>(2);
    if (short_read) return 2;
    const size_t rows = count(h[0]), cols = count(h[1]);
    const auto x = take<float>(rows * cols);
    if (short_read) return 2;
    std::vector<float> out(rows * cols);
    for (size_t r = 0; r < rows; ++r) softmax_row(x.data(), out.data(), cols, r);
    give(out);
  } else if (op == "gather_rows") {
    const auto h = take<double>(3);
    if (short_read) return 2;
    const size_t src_rows = count(h[0]), n = count(h[1]), cols = count(h[2]);
    const auto src = take<float>(src_rows * cols);
    const auto index = take<int32_t>(n);
    if (short_read) return 2;
    for (const int32_t i : index) {
      if (i < 0 || static_cast<size_t>(i) >= src_rows) return 2;
    }
    std::vector<float> out(n * cols);
    for (size_t i = 0; i < n * cols; ++i) gather_rows_element(src.data(), index.data(), out.data(), cols, i);
    give(out);
  } else if (op == "permute_rows") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const size_t src_rows = count(h[0]), n = count(h[1]), cols = count(h[2]), out_cols = count(h[3]), experts = count(h[4]);
    if ((out_cols != cols && out_cols != cols + 1) || (out_cols == cols + 1 && experts == 0)) return 2;
    const auto src = take<float>(src_rows * cols);
    const auto index = take<int32_t>(n);
    const auto probs = take<float>(src_rows * experts);
    const auto expert = take<int32_t>(experts > 0 ? n : 0);
    if (short_read) return 2;
    for (size_t r = 0; r < n; ++r) {
      if (index[r] < 0 || static_cast<size_t>(index[r]) >= src_rows || (experts > 0 && (expert[r] < 0 || static_cast<size_t>(expert[r]) >= experts))) return 2;
    }
    std::vector<float> out(n * out_cols), probs_out(experts > 0 ? n : 0);
    for (size_t i = 0; i < out.size(); ++i) permute_rows_element(src.data(), cols, index.data(), out.data(), out_cols, probs.data(), expert.data(), experts, i);
    for (size_t r = 0; r < probs_out.size(); ++r) permute_prob_element(index.data(), probs.data(), expert.data(), experts, probs_out.data(), r);
    give(out);
    give(probs_out);
  } else if (op == "swiglu") {
    const auto h = take<double>(1);
    if (short_read) return 2;
    const size_t n = count(h[0]);
    const auto gate = take<float>(n), up = take<float>(n);
    if (short_read) return 2;
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) swiglu_element(gate.data(), up.data(), out.data(), i);
    give(out);
  } else if (op == "combine_rows") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const size_t n = count(h[0]), row_cols = count(h[1]), tokens = count(h[2]), cols = count(h[3]);
    const auto rows = take<float>(n * row_cols);
    const auto offsets = take<int32_t>(tokens + 1), order = take<int32_t>(n);
    const auto weights = take<float>(h[4] != 0 ? n : 0);
    if (short_read || offsets[tokens] != static_cast<int32_t>(n)) return 2;
    std::vector<float> out(tokens * cols);
    for (size_t t = 0; t < tokens; ++t) {
      for (size_t c = 0; c < cols; ++c) {
        combine_rows_element(rows.data(), row_cols, offsets.data(), order.data(), weights.empty() ? nullptr : weights.data(), cols, out.data(), t, c);
      }
    }
    give(out);
  } else if (op == "combine_backward") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const size_t tokens = count(h[0]), n = count(h[1]), cols = count(h[2]);
    const auto g = take<float>(tokens * cols);
    const auto index = take<int32_t>(n);
    const auto weights = take<float>(n), rows = take<float>(n * cols);
    if (short_read) return 2;
    // With no columns no row of g is read (the CPU binding checks no index then either).
    for (const int32_t t : index) {
      if (cols > 0 && (t < 0 || static_cast<size_t>(t) >= tokens)) return 2;
    }
    std::vector<float> grad_rows(h[3] != 0 ? n * cols : 0), grad_weights(h[4] != 0 ? n : 0);
    for (size_t i = 0; i < grad_rows.size(); ++i) combine_backward_rows_element(g.data(), index.data(), cols, weights.data(), grad_rows.data(), i);
    for (size_t j = 0; j < grad_weights.size(); ++j) combine_backward_weight_element(g.data(), index.data(), cols, rows.data(), grad_weights.data(), j);
    give(grad_rows);
    give(grad_weights);
  } else if (op == "swap_dims") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const size_t a = count(h[0]), n0 = count(h[1]), b = count(h[2]), n1 = count(h[3]), c = count(h[4]), n = a * n0 * b * n1 * c;
    const auto src = take<float>(n);
    if (short_read) return 2;
    std::vector<float> out(n);
    for (size_t o = 0; o < n; ++o) swap_dims_element(src.data(), out.data(), n0, b, n1, c, o);
    give(out);
  } else if (op == "round_bf16") {
    const auto h = take<double>(1);
    if (short_read) return 2;
    const auto src = take<float>(count(h[0]));
    if (short_read) return 2;
    std::vector<float> out(src.size());
    for (size_t i = 0; i < src.size(); ++i) round_bf16_element(src.data(), out.data(), i);
    give(out);
  } else if (op == "sum_squares") {
    const auto h = take<double>(1);
    if (short_read) return 2;
    const auto x = take<float>(count(h[0]));
    if (short_read) return 2;
    give(std::vector<double>{sum_squares_block_order(x.data(), x.size())});
  } else if (op == "adamw") {
    const auto h = take<double>(9);
    if (short_read) return 2;
    const size_t n = count(h[0]);
    auto w = take<float>(n);
    const auto g = take<float>(n);
    auto m = take<float>(n), v = take<float>(n);
    if (short_read) return 2;
    for (size_t k = 0; k < n; ++k) adamw_element(h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], w.data(), g.data(), m.data(), v.data(), k);
    give(w);
    give(m);
    give(v);
  } else if (op == "attention" || op == "attention_backward" || op == "attention_flash" || op == "attention_flash_backward") {
    const bool backward = op == "attention_backward" || op == "attention_flash_backward";
    const bool tiled = op == "attention_flash" || op == "attention_flash_backward";
    const auto h = take<double>(backward ? 13 : 12);
    if (short_read) return 2;
    AttnShape a{count(h[0]), count(h[1]), count(h[2]), count(h[3]), count(h[4]), count(h[5]), count(h[6]), static_cast<float>(h[7]), h[8] != 0,
                nullptr, count(h[9]), nullptr, count(h[10]), nullptr, count(h[11])};
    if (a.hkv == 0 || a.hq % a.hkv != 0) return 2;
    const auto bad_len = [&](size_t len, size_t s) { return len != 0 && len != s && len != a.b * s; };
    if (bad_len(a.qpos_len, a.sq) || bad_len(a.kpos_len, a.sk) || bad_len(a.qfirst_len, a.sq)) return 2;
    const size_t rows = a.b * a.hq * a.sq, nq = rows * a.d, nk = a.b * a.sk * a.hkv * a.d, nv = a.b * a.sk * a.hkv * a.dv;
    const auto q = take<float>(nq), k = take<float>(nk), v = take<float>(nv);
    const auto out = take<float>(backward ? rows * a.dv : 0), dout = take<float>(backward ? rows * a.dv : 0);
    const bool lse32 = backward && h[12] != 0;
    const auto lse_f32 = take<float>(lse32 ? rows : 0);
    const auto lse_f64 = take<double>(backward && !lse32 ? rows : 0);
    const auto qpos = take<int32_t>(a.qpos_len), kpos = take<int32_t>(a.kpos_len), qfirst = take<int32_t>(a.qfirst_len);
    if (short_read) return 2;
    a.qpos = a.qpos_len == 0 ? nullptr : qpos.data();
    a.kpos = a.kpos_len == 0 ? nullptr : kpos.data();
    a.qfirst = a.qfirst_len == 0 ? nullptr : qfirst.data();
    if (tiled && !pleat::flash::fits(a)) return 2;
    if (tiled && !backward) {
      std::vector<double> lse(rows);
      std::vector<float> o(rows * a.dv);
      pleat::flash::forward_host(a, q.data(), k.data(), v.data(), o.data(), nullptr, lse.data());
      give(o);
      give(lse);
    } else if (tiled) {
      std::vector<float> dq(nq), dk(nk), dv(nv);
      pleat::flash::backward_host(a, q.data(), k.data(), v.data(), out.data(), dout.data(), lse32 ? lse_f32.data() : nullptr, lse32 ? nullptr : lse_f64.data(), dq.data(),
                           dk.data(), dv.data());
      give(dq);
      give(dk);
      give(dv);
    } else if (!backward) {
      std::vector<double> lse(rows), sum(rows);
      std::vector<float> o(rows * a.dv);
      for (size_t r = 0; r < rows; ++r) attention_row_stats(a, q.data(), k.data(), lse.data(), sum.data(), nullptr, nullptr, r);
      for (size_t i = 0; i < o.size(); ++i) attention_out_element(a, q.data(), k.data(), v.data(), lse.data(), sum.data(), o.data(), i);
      give(o);
      give(lse);
    } else {
      const float* l32 = lse32 ? lse_f32.data() : nullptr;
      const double* l64 = lse32 ? nullptr : lse_f64.data();
      std::vector<double> delta(rows);
      std::vector<float> dq(nq), dk(nk), dv(nv);
      for (size_t r = 0; r < rows; ++r) attention_delta_row(a, out.data(), dout.data(), delta.data(), r);
      for (size_t i = 0; i < nq; ++i) attention_dq_element(a, q.data(), k.data(), v.data(), dout.data(), l32, l64, delta.data(), dq.data(), i);
      for (size_t i = 0; i < nk; ++i) attention_dkv_element(a, q.data(), k.data(), v.data(), dout.data(), l32, l64, delta.data(), false, dk.data(), i);
      for (size_t i = 0; i < nv; ++i) attention_dkv_element(a, q.data(), k.data(), v.data(), dout.data(), l32, l64, delta.data(), true, dv.data(), i);
      give(dq);
      give(dk);
      give(dv);
    }
  } else if (const int status = gated_sinks_emulation(op); status >= 0) {
    return status;
  } else {
    std::fprintf(stderr, "pleat_kernel_emulation: unknown op '%s' (rope, elementwise, swiglu_backward, rmsnorm_backward, cross_entropy, router, softmax_rows, gather_rows, permute_rows, swiglu, combine_rows, combine_backward, swap_dims, round_bf16, sum_squares, adamw, attention, attention_backward, attention_flash, attention_flash_backward, gated_activation, attention_sinks)\n", op.c_str());
    return 2;
  }
  return 0;
}
