// pleat_kernel_emulation's ops for the kernels of gated_sinks.cu: their per-element functions
// (gated_sinks_element.h) run on the host over every index, in order (a grid of one thread), so
// their arithmetic and indexing are checked against the CPU kernel and the TypeScript loops
// where no GPU runs (properties/native/gatedSinksTwins.ts). ops_emulation.cc's main() calls
// gated_sinks_emulation(op) before its unknown-op branch. Little-endian binary on stdin / stdout:
//   gated_activation  request f64[5] {n, alpha, offset, limit, clamped (0 or 1)}, f32 gate[n],
//            up[n], grad[n]                                reply f32 out[n], dgate[n], dup[n]
//   attention_sinks  request f64[4] {b, sq, hq, dv}, f32 out[b sq hq dv], f64 lse[b hq sq],
//            f32 sinks[hq], f32 g[b sq hq dv]              reply f32 out folded[b sq hq dv], f64 lse
//            folded[b hq sq], f32 dz[hq] (the gradient from g and the folded out and lse)
// Exit 2 on a short request.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "emulation_io.h"
#include "gated_sinks_element.h"

using pleat::emulation::count;
using pleat::emulation::give;
using pleat::emulation::short_read;
using pleat::emulation::take;

// The exit status of `op` when it is one of this file's (0, or 2 on a short request); -1 when it
// is not.
int gated_sinks_emulation(const std::string& op) {
  using namespace pleat::element;
  if (op == "gated_activation") {
    const auto h = take<double>(5);
    if (short_read) return 2;
    const size_t n = count(h[0]);
    const pleat::GluOptions o{h[1], h[2], h[3], h[4] != 0};
    const auto gate = take<float>(n), up = take<float>(n), grad = take<float>(n);
    if (short_read) return 2;
    std::vector<float> out(n), dgate(n), dup(n);
    for (size_t i = 0; i < n; ++i) gated_activation_element(gate.data(), up.data(), out.data(), o, i);
    for (size_t i = 0; i < n; ++i) gated_activation_backward_element(gate.data(), up.data(), grad.data(), dgate.data(), dup.data(), o, i);
    give(out);
    give(dgate);
    give(dup);
    return 0;
  }
  if (op == "attention_sinks") {
    const auto h = take<double>(4);
    if (short_read) return 2;
    const size_t b = count(h[0]), sq = count(h[1]), hq = count(h[2]), dv = count(h[3]), rows = b * hq * sq;
    auto out = take<float>(rows * dv);
    auto lse = take<double>(rows);
    const auto sinks = take<float>(hq), g = take<float>(rows * dv);
    if (short_read) return 2;
    for (size_t r = 0; r < rows; ++r) sinks_fold_row(out.data(), lse.data(), sinks.data(), sq, hq, dv, r);
    std::vector<double> terms(rows);
    std::vector<float> dz(hq);
    for (size_t r = 0; r < rows; ++r) terms[r] = sinks_gradient_row(g.data(), out.data(), lse.data(), sinks.data(), sq, hq, dv, r);
    for (size_t head = 0; head < hq; ++head) sinks_gradient_head(terms.data(), b, sq, hq, dz.data(), head);
    give(out);
    give(lse);
    give(dz);
    return 0;
  }
  return -1;
}
