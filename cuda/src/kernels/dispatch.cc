// MoE dispatch kernels (see dispatch.h). All of it is data movement: the plan is a counting sort
// of the routed rows by expert, permute a row gather that also writes each row's prob, unpermute
// a per-token sum of its rows. The vector paths are written for bandwidth the way rows.cc is:
// four vectors in flight, masked vectors for a row's head and tail, non-temporal stores for
// outputs too large to stay in cache.
//
// Unpermute (combine_rows) runs token-outer rather than as a scatter-add: it first lists the
// rows of every token in increasing j (a counting sort of the index), then each output row is
// computed in registers from its rows and stored once. An output element then sees exactly the
// adds of the scatter-add in increasing j, starting from +0 (so a -0 row gives +0 as before),
// but the output is never read back from memory, and threads split the tokens without any
// write conflict.
#include "dispatch.h"

#include <immintrin.h>

#include <cstring>
#include <vector>

#include "rows.h"
#include "thread_pool.h"
#include "vmath.h"

namespace pleat {

// ---- the plan ---------------------------------------------------------------------------------

size_t routing_counts(const uint8_t* mask, size_t tokens, size_t experts, int32_t* counts) {
  for (size_t e = 0; e < experts; ++e) counts[e] = 0;
  // Token-outer, so the mask is read in order; the inner loop vectorises (bytes to int lanes).
  for (size_t t = 0; t < tokens; ++t) {
    const uint8_t* row = mask + t * experts;
    for (size_t e = 0; e < experts; ++e) counts[e] += row[e] != 0 ? 1 : 0;
  }
  size_t n = 0;
  for (size_t e = 0; e < experts; ++e) n += static_cast<size_t>(counts[e]);
  return n;
}

void routing_order(const uint8_t* mask, size_t tokens, size_t experts, int32_t* sorted_tokens,
                   int32_t* sorted_experts) {
  // Counting sort: each expert's block starts after the rows of the experts before it; a
  // token-outer scan then appends token t to the block of every expert it routes to, so tokens
  // ascend within a block.
  std::vector<int32_t> counts(experts);
  routing_counts(mask, tokens, experts, counts.data());
  std::vector<size_t> cursor(experts);
  size_t start = 0;
  for (size_t e = 0; e < experts; ++e) {
    cursor[e] = start;
    start += static_cast<size_t>(counts[e]);
  }
  const auto emit = [&](size_t t, size_t e) {
    const size_t j = cursor[e]++;
    sorted_tokens[j] = static_cast<int32_t>(t);
    sorted_experts[j] = static_cast<int32_t>(e);
  };
  for (size_t t = 0; t < tokens; ++t) {
    const uint8_t* row = mask + t * experts;
    size_t e = 0;
    // Eight mask bytes per word; a routed token has few experts, so most words are zero. On
    // this little-endian target byte b of the word is entry e + b: lowest set byte first keeps
    // the experts ascending.
    for (; e + 8 <= experts; e += 8) {
      uint64_t word = 0;
      std::memcpy(&word, row + e, 8);
      while (word != 0) {
        const unsigned b = static_cast<unsigned>(__builtin_ctzll(word)) / 8;
        emit(t, e + b);
        word &= ~(uint64_t{0xFF} << (8 * b));
      }
    }
    for (; e < experts; ++e) {
      if (row[e] != 0) emit(t, e);
    }
  }
}

// ---- references -------------------------------------------------------------------------------

namespace {

float extra_of(const GatherExtraArgs& a, size_t j) {
  const size_t at = static_cast<size_t>(a.index[j]) * a.extra_stride +
                    (a.extra_expert != nullptr ? static_cast<size_t>(a.extra_expert[j]) : a.extra_offset);
  return a.extra[at];
}

void put_extra(const GatherExtraArgs& a, size_t j) {
  if (a.extra == nullptr) return;
  const float v = extra_of(a, j);
  if (a.out_stride > a.cols) a.out[j * a.out_stride + a.cols] = v;
  if (a.extra_out != nullptr) a.extra_out[j] = v;
}

// Row j's source of a gather, wherever it lies.
const float* source_of(const GatherExtraArgs& a, size_t j) { return a.src_ptrs != nullptr ? a.src_ptrs[j] : a.src + static_cast<size_t>(a.index[j]) * a.src_stride; }

// Row j of a combine's input, wherever it lies.
const float* row_of(const CombineArgs& a, size_t j) { return a.row_ptrs != nullptr ? a.row_ptrs[j] : a.rows + j * a.row_stride; }

}  // namespace

void gather_rows_extra_ref(const GatherExtraArgs& a) {
  for (size_t j = 0; j < a.n; ++j) {
    const float* s = source_of(a, j);
    float* d = a.out + j * a.out_stride;
    for (size_t c = 0; c < a.cols; ++c) d[c] = s[c];
    put_extra(a, j);
  }
}

void combine_rows_ref(const CombineArgs& a) {
  // The specification: a scatter-add into zeros in increasing j.
  for (size_t i = 0; i < a.tokens * a.out_stride; ++i) a.out[i] = 0.0f;
  for (size_t j = 0; j < a.n; ++j) {
    const float* r = row_of(a, j);
    float* d = a.out + static_cast<size_t>(a.index[j]) * a.out_stride;
    if (a.weights != nullptr) {
      const float w = a.weights[j];
      for (size_t c = 0; c < a.cols; ++c) {
        const float p = w * r[c];
        d[c] = d[c] + p;
      }
    } else {
      for (size_t c = 0; c < a.cols; ++c) d[c] = d[c] + r[c];
    }
    if (a.extra != nullptr) d[a.cols] = d[a.cols] + a.extra[j];
  }
}

namespace {

// grad_w of row j: the float32 products summed in float64 in increasing column, from +0, as the
// backward of a per-row scale sums them (tensor/Broadcast.ts reduceTo, "rows"). One column is
// no broadcast there: the gradient is the product itself (a -0 stays -0).
float weight_grad(const float* g, const float* r, size_t cols) {
  if (cols == 1) return g[0] * r[0];
  double acc = 0.0;
  for (size_t c = 0; c < cols; ++c) {
    const float p = g[c] * r[c];
    acc += static_cast<double>(p);
  }
  return static_cast<float>(acc);
}

void combine_backward_rows(const CombineBackwardArgs& a, size_t begin, size_t end) {
  for (size_t j = begin; j < end; ++j) {
    const float* g = a.g + static_cast<size_t>(a.index[j]) * a.cols;
    if (a.grad_rows != nullptr) {
      const float w = a.weights[j];
      float* d = a.grad_rows + j * a.cols;
      for (size_t c = 0; c < a.cols; ++c) d[c] = g[c] * w;
    }
    if (a.grad_weights != nullptr) a.grad_weights[j] = weight_grad(g, a.rows + j * a.cols, a.cols);
  }
}

}  // namespace

void combine_backward_ref(const CombineBackwardArgs& a) { combine_backward_rows(a, 0, a.n); }

void scatter_pairs(const float* values, size_t stride, const int32_t* index, const int32_t* expert,
                   size_t n, size_t experts, float* out) {
  for (size_t j = 0; j < n; ++j) {
    float* d = out + static_cast<size_t>(index[j]) * experts + static_cast<size_t>(expert[j]);
    *d = *d + values[j * stride];
  }
}

// ---- AVX-512 ----------------------------------------------------------------------------------

namespace {

// Floats from p to the next 64-byte boundary (views are 4-byte aligned), at most `cols`.
size_t head_to_line(const float* p, size_t cols) {
  const size_t head = ((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63) / sizeof(float);
  return head < cols ? head : cols;
}

// The rows of one token, as combine_rows reads them.
struct TokenRows {
  const float* const* rows;  // row j starts at rows[j]
  const int32_t* js;  // the rows of the token, increasing
  size_t k;
  const float* weights;  // or null
};

// Columns [c, c + width) of one output row (width <= 16): a masked vector.
__attribute__((target("avx512f"))) void combine_masked_avx512(const TokenRows& t, float* d, size_t c, size_t width) {
  const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(width));
  __m512 acc = _mm512_setzero_ps();
  for (size_t i = 0; i < t.k; ++i) {
    const size_t j = static_cast<size_t>(t.js[i]);
    const __m512 r = _mm512_maskz_loadu_ps(m, t.rows[j] + c);
    acc = _mm512_add_ps(acc, t.weights != nullptr ? _mm512_mul_ps(_mm512_set1_ps(t.weights[j]), r) : r);
  }
  _mm512_mask_storeu_ps(d + c, m, acc);
}

// Columns [c, c + 64) into a 64-byte aligned d + c.
__attribute__((target("avx512f"))) void combine_line4_avx512(const TokenRows& t, float* d, size_t c, bool stream) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  for (size_t i = 0; i < t.k; ++i) {
    const size_t j = static_cast<size_t>(t.js[i]);
    const float* r = t.rows[j] + c;
    __m512 r0 = _mm512_loadu_ps(r), r1 = _mm512_loadu_ps(r + 16), r2 = _mm512_loadu_ps(r + 32), r3 = _mm512_loadu_ps(r + 48);
    if (t.weights != nullptr) {
      const __m512 w = _mm512_set1_ps(t.weights[j]);
      r0 = _mm512_mul_ps(w, r0);
      r1 = _mm512_mul_ps(w, r1);
      r2 = _mm512_mul_ps(w, r2);
      r3 = _mm512_mul_ps(w, r3);
    }
    a0 = _mm512_add_ps(a0, r0);
    a1 = _mm512_add_ps(a1, r1);
    a2 = _mm512_add_ps(a2, r2);
    a3 = _mm512_add_ps(a3, r3);
  }
  if (stream) {
    _mm512_stream_ps(d + c, a0);
    _mm512_stream_ps(d + c + 16, a1);
    _mm512_stream_ps(d + c + 32, a2);
    _mm512_stream_ps(d + c + 48, a3);
  } else {
    _mm512_store_ps(d + c, a0);
    _mm512_store_ps(d + c + 16, a1);
    _mm512_store_ps(d + c + 32, a2);
    _mm512_store_ps(d + c + 48, a3);
  }
}

__attribute__((target("avx512f"))) void combine_token_avx512(const TokenRows& t, float* d, size_t cols, bool stream) {
  // Every element is computed on its own, so the columns split at d's cache lines: a masked
  // head, whole aligned lines, then masked vectors for the rest.
  size_t c = head_to_line(d, cols);
  if (c != 0) combine_masked_avx512(t, d, 0, c);
  for (; c + 64 <= cols; c += 64) combine_line4_avx512(t, d, c, stream);
  for (; c < cols; c += 16) combine_masked_avx512(t, d, c, cols - c < 16 ? cols - c : 16);
}

// Portable token-outer sum (the AVX2 path): the output row accumulates in place, in cache.
void combine_token_portable(const TokenRows& t, float* d, size_t cols) {
  for (size_t c = 0; c < cols; ++c) d[c] = 0.0f;
  for (size_t i = 0; i < t.k; ++i) {
    const size_t j = static_cast<size_t>(t.js[i]);
    const float* r = t.rows[j];
    if (t.weights != nullptr) {
      const float w = t.weights[j];
      for (size_t c = 0; c < cols; ++c) {
        const float p = w * r[c];
        d[c] = d[c] + p;
      }
    } else {
      for (size_t c = 0; c < cols; ++c) d[c] = d[c] + r[c];
    }
  }
}

}  // namespace

void gather_rows_extra(Isa isa, const GatherExtraArgs& a) {
  if (a.n == 0) return;
  if (isa == Isa::Scalar) return gather_rows_extra_ref(a);
  const bool stream = a.n * a.out_stride * sizeof(float) >= kStreamBytes;
  const RowFn copy_row = copy_row_for(isa, stream);  // rows.cc's row copy
  pool_for(a.n, 2 * a.n * a.out_stride * sizeof(float), [&](size_t begin, size_t end) {
    for (size_t j = begin; j < end; ++j) {
      float* d = a.out + j * a.out_stride;
      copy_row(d, source_of(a, j), a.cols);
      put_extra(a, j);
    }
    // Non-temporal stores are weakly ordered: fence them before the caller (or JS) reads out.
    if (stream) _mm_sfence();
  });
}

void combine_rows(Isa isa, const CombineArgs& a) {
  if (a.tokens == 0) return;
  if (isa == Isa::Scalar) return combine_rows_ref(a);
  // The rows of each token, increasing: a stable counting sort of j by index[j].
  std::vector<size_t> start(a.tokens + 1, 0);
  for (size_t j = 0; j < a.n; ++j) ++start[static_cast<size_t>(a.index[j]) + 1];
  for (size_t t = 0; t < a.tokens; ++t) start[t + 1] += start[t];
  std::vector<int32_t> rows_of(a.n);
  {
    std::vector<size_t> cursor(start.begin(), start.end() - 1);
    for (size_t j = 0; j < a.n; ++j) rows_of[cursor[static_cast<size_t>(a.index[j])]++] = static_cast<int32_t>(j);
  }
  // Where each row starts: the caller's list, or one buffer's rows.
  std::vector<const float*> own;
  if (a.row_ptrs == nullptr) {
    own.resize(a.n);
    for (size_t j = 0; j < a.n; ++j) own[j] = row_of(a, j);
  }
  const float* const* row_ptrs = a.row_ptrs != nullptr ? a.row_ptrs : own.data();
  const bool stream = isa == Isa::Avx512 && a.tokens * a.out_stride * sizeof(float) >= kStreamBytes;
  const size_t bytes = (a.n * a.cols + a.tokens * a.out_stride) * sizeof(float);
  pool_for(a.tokens, bytes, [&](size_t begin, size_t end) {
    for (size_t tok = begin; tok < end; ++tok) {
      const TokenRows t{row_ptrs, rows_of.data() + start[tok], start[tok + 1] - start[tok], a.weights};
      float* d = a.out + tok * a.out_stride;
      if (isa == Isa::Avx512) {
        combine_token_avx512(t, d, a.cols, stream);
      } else {
        combine_token_portable(t, d, a.cols);
      }
      if (a.extra != nullptr) {
        float s = 0.0f;
        for (size_t i = 0; i < t.k; ++i) s = s + a.extra[t.js[i]];
        d[a.cols] = s;
      }
    }
    if (stream) _mm_sfence();
  });
}

void combine_backward(Isa isa, const CombineBackwardArgs& a) {
  if (isa == Isa::Scalar) return combine_backward_ref(a);
  // Rows are independent; the float64 sum of each row keeps its order (one row, one thread).
  const size_t bytes = 3 * a.n * a.cols * sizeof(float);
  pool_for(a.n, bytes, [&](size_t begin, size_t end) { combine_backward_rows(a, begin, end); });
}

}  // namespace pleat
