// First CUDA kernels of the GPU path (issue 15), each the device twin of a CPU kernel and
// checked against it where a GPU runs (properties/native/CudaOps.prop.ts, scripts/device-check):
//   gather_rows    out[i, :] = src[index[i], :]                      (rows.h gather_rows; exact)
//   softmax_rows   out[r, :] = softmax(x[r, :]), one thread a row     (rowwise.cc softmax_row_ref's
//                  arithmetic: within one float ulp, the device's exp)
//   permute_rows   the MoE permute (dispatch.h gather_rows_extra): rows gathered as gather_rows,
//                  with out_cols = cols + 1 each row's prob probs[index[i] * experts + expert[i]]
//                  as a last column, and / or into probs_out [rows] (null: none); exact
//   rmsnorm_rows   out = x * rstd * w per row, rstd = 1 / sqrt(mean(x^2) + eps) in float64
//                  (rowwise.cc rmsnorm_rows_ref: the sum of squares in another order, 256
//                  strided partials then a tree, so rstd differs by up to cols double ulps,
//                  relative: a few in practice, and out by one float ulp)
//   swiglu         out = g * sigmoid(g) * u in float64 as swiglu_ref (exp may differ by an ulp
//                  in double, so out by one float ulp at most)
//   adamw          the update of adamw.h in float64 in the same order (IEEE division and square
//                  root on both sides: the same bits)
//   to_bf16        float32 -> bfloat16 values, round to nearest even (bf16.h's rounding; exact)
//   combine_rows   MoE unpermute: out[t, :] = 0 + the sum over token t's rows j, in increasing j,
//                  of weights[j] * rows[j, :] (float32 products and adds, each rounded: the same
//                  bits as dispatch.h combine_rows); token t's rows come as a CSR list
//                  (token_offsets [T + 1], token_rows in increasing j)
//   combine_backward  the MoE unpermute's backward (dispatch.h combine_backward): g [T, cols],
//                  rows [n, cols]; grad_rows[j, :] = g[index[j], :] * weights[j] (float32
//                  products) and grad_weights[j] = the float64 sum in increasing column of the
//                  float32 products g[index[j], c] * rows[j, c], rounded to float32 (one column:
//                  the product). grad_rows or grad_weights may be null (that part is skipped);
//                  weights is read only with grad_rows, rows only with grad_weights (either may
//                  be null without its output). The same bits as the CPU
//   rope           RoPE's rotation (rope.h): x [b, s, heads, d], tables [table_rows, d / 2] in
//                  float64, each operation rounded on its own: the same bits as the CPU
//   rmsnorm_backward  the gradients of rmsnorm_rows (rows.h rmsnorm_backward; dx or dw may be
//                  null): the CPU's float64 order and association, so the same bits; coefficient
//                  is device scratch of `rows` doubles (needed with dx)
//   router         Router.select and probsFor fused (src/moe/Router.ts): mode 0 softmax with
//                  pre-softmax, 1 softmax after the top-k, 2 sigmoid, 3 sqrtsoftplus (+ bias for the selection);
//                  groups > 0: group-limited; ties to the lower index; float64 scores; indices
//                  [T, K] best first and dense probs [T, E] (zero off the selection) times scale.
//                  At most kRouterMaxExperts experts and kRouterMaxTopk selected
//   ce_row_max, ce_row_sum_exp, ce_grad  the vocabulary-parallel loss's row kernels
//                  (cross_entropy.h): the maxima exact, the sums of exp(x - max) j ascending
//                  (exp's last bit may differ), the gradient within one float ulp
//   swiglu_backward  the gradients of swiglu (rows.h swiglu_backward; dgate or dup may be null)
//                  in float64 as swiglu_backward_ref: within one float ulp (exp's last bit)
//   (gated_sinks_cuda.h: gated_activation and its backward, Megatron-Core's options; the attention
//   sinks' fold and gradient)
// Device pointers; launched on `stream`; return the launch status.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "adamw.h"
#include "ops_element.h"

namespace pleat {

cudaError_t to_bf16_launch(const float* in, uint16_t* out, size_t n, cudaStream_t stream);
cudaError_t permute_rows_launch(const float* src, size_t cols, const int32_t* index, size_t rows, float* out, size_t out_cols, const float* probs,
                                const int32_t* expert, size_t experts, float* probs_out, cudaStream_t stream);
cudaError_t gather_rows_launch(const float* src, const int32_t* index, float* out, size_t rows, size_t cols, cudaStream_t stream);
cudaError_t softmax_rows_launch(const float* x, float* out, size_t rows, size_t cols, cudaStream_t stream);
cudaError_t rmsnorm_rows_launch(const float* x, const float* weight, float* out, double* rstd, size_t rows, size_t cols, double eps,
                                cudaStream_t stream);
cudaError_t swiglu_launch(const float* gate, const float* up, float* out, size_t n, cudaStream_t stream);
cudaError_t combine_rows_launch(const float* rows, size_t row_stride, const int32_t* token_offsets, const int32_t* token_rows,
                                const float* weights, size_t tokens, size_t cols, float* out, cudaStream_t stream);
// rows.h scatter_add_rows: out [targets, cols] += src's rows, target t's sources order[offsets[t]
// .. offsets[t + 1]) in that (increasing) order.
cudaError_t scatter_add_rows_launch(const float* src, const int32_t* offsets, const int32_t* order, size_t targets, size_t cols, float* out,
                                    cudaStream_t stream);
cudaError_t combine_backward_launch(const float* g, const int32_t* index, size_t n, size_t cols, const float* weights, const float* rows,
                                    float* grad_rows, float* grad_weights, cudaStream_t stream);
cudaError_t router_launch(const float* logits, size_t tokens, int experts, int topk, int mode, int groups, int group_topk, const double* bias,
                          double scale, int32_t* indices, float* probs, cudaStream_t stream);
cudaError_t ce_row_max_launch(const float* x, size_t rows, size_t cols, double* max, cudaStream_t stream);
cudaError_t ce_row_sum_exp_launch(const float* x, size_t rows, size_t cols, const double* max, double* sum, cudaStream_t stream);
cudaError_t ce_grad_launch(const float* x, size_t rows, size_t cols, const double* log_sum, const int32_t* targets, int32_t ignore, int64_t start,
                           double scale, float* d, cudaStream_t stream);
cudaError_t rmsnorm_backward_launch(const float* x, const float* w, const float* g, const double* rstd, size_t rows, size_t cols, float* dx,
                                    double* dw, double* coefficient, cudaStream_t stream);
cudaError_t rope_launch(const float* x, const double* cos, const double* sin, float* out, size_t b, size_t s, size_t heads, size_t d,
                        size_t table_rows, double sign, cudaStream_t stream);
cudaError_t swiglu_backward_launch(const float* gate, const float* up, const float* grad, float* dgate, float* dup, size_t n,
                                   cudaStream_t stream);
cudaError_t adamw_f32_launch(const AdamwScalars& s, size_t n, float* w, const float* g, float* m, float* v, cudaStream_t stream);

}  // namespace pleat
