// MoE dispatch kernels: the dispatch plan of a routing mask, permute fused with the gather of
// each row's prob, unpermute fused with the weighting and the sum, and unpermute's backward
// (src/moe/Permute.ts is the specification; src/native/CpuDispatch.ts the typed wrappers).
//
// Shape legend: T tokens, E experts, N routed rows (nonzero entries of the mask), C columns.
//
//   routing_counts: counts[e] = rows of expert e of mask [T, E]; returns N
//   routing_order:  the rows in expert-major, token-ascending order (token and expert of each),
//                   by a counting sort over a token-outer scan of the mask
//   gather_rows_extra: out[j, 0:C] = src[index[j], 0:C], and row j's "extra" value (a prob)
//                   into out[j, C] (out has C + 1 columns) and / or extra_out[j]
//   combine_rows:   out[t, 0:C] = 0 + sum over rows j of token t, in increasing j, of
//                   w[j] * rows[j, 0:C] (a float32 product, then float32 adds); unweighted
//                   without w; out[t, C] likewise sums extra[j] when out has C + 1 columns
//   combine_backward: grad_rows[j] = w[j] * g[index[j]] (float32 products), grad_w[j] = the
//                   float64 sum, in increasing column, of the float32 products
//                   g[index[j], c] * rows[j, c], rounded to float32 (with one column, the
//                   product itself)
//   scatter_pairs:  out[index[j] * E + expert[j]] += values[j * stride] in increasing j
//
// Every result is the same bits as the sequential loops of the scalar references, on every ISA
// and thread count: combine_rows runs token-outer (each output row is written once, by one
// thread, after its adds in increasing j), which is the order of a scatter-add in increasing j.
// The file is compiled without FMA contraction (cuda/CMakeLists.txt), so a product and an add
// are two roundings in the references as in the vector code. Indices and experts must be
// checked by the caller before any of these runs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_features.h"

namespace pleat {

size_t routing_counts(const uint8_t* mask, size_t tokens, size_t experts, int32_t* counts);

// `sorted_tokens` and `sorted_experts` hold N entries each (N = routing_counts of the mask).
void routing_order(const uint8_t* mask, size_t tokens, size_t experts, int32_t* sorted_tokens,
                   int32_t* sorted_experts);

// Row j of out (out_stride = cols or cols + 1) gets src row index[j] (src_stride >= cols). The
// extra value of row j, when `extra` is non-null, is
//   extra[index[j] * extra_stride + (extra_expert ? extra_expert[j] : extra_offset)]
// and goes to out[j, cols] when out_stride == cols + 1, and to extra_out[j] when non-null.
struct GatherExtraArgs {
  const float* src = nullptr;
  size_t src_stride = 0;
  // Row j's source where the rows come from several buffers (src_ptrs[j]; src, src_stride and
  // index unused then): an exchange's result gathered from every sender in one call.
  const float* const* src_ptrs = nullptr;
  const int32_t* index = nullptr;
  size_t n = 0;
  size_t cols = 0;
  float* out = nullptr;
  size_t out_stride = 0;
  const float* extra = nullptr;
  size_t extra_stride = 0;
  const int32_t* extra_expert = nullptr;
  size_t extra_offset = 0;
  float* extra_out = nullptr;
};
void gather_rows_extra(Isa isa, const GatherExtraArgs& a);
void gather_rows_extra_ref(const GatherExtraArgs& a);

// out [tokens, out_stride] (out_stride = cols, or cols + 1 with `extra`); rows [n, row_stride].
struct CombineArgs {
  const float* rows = nullptr;
  size_t row_stride = 0;
  // Row j where the rows do not lie in one buffer (row_ptrs[j], each `cols` floats; rows and
  // row_stride unused then): an exchange's received blocks summed where they lie.
  const float* const* row_ptrs = nullptr;
  const int32_t* index = nullptr;
  size_t n = 0;
  const float* weights = nullptr;  // [n] or null
  const float* extra = nullptr;    // [n] or null
  size_t tokens = 0;
  size_t cols = 0;
  float* out = nullptr;
  size_t out_stride = 0;
};
void combine_rows(Isa isa, const CombineArgs& a);
void combine_rows_ref(const CombineArgs& a);

// g [tokens, cols], rows [n, cols], weights [n]; either output may be null.
struct CombineBackwardArgs {
  const float* g = nullptr;
  const int32_t* index = nullptr;
  size_t n = 0;
  size_t cols = 0;
  const float* weights = nullptr;
  const float* rows = nullptr;
  float* grad_rows = nullptr;
  float* grad_weights = nullptr;
};
void combine_backward(Isa isa, const CombineBackwardArgs& a);
void combine_backward_ref(const CombineBackwardArgs& a);

void scatter_pairs(const float* values, size_t stride, const int32_t* index, const int32_t* expert,
                   size_t n, size_t experts, float* out);

}  // namespace pleat
