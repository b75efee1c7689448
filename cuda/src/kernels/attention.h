// attention: scaled dot-product attention with grouped-query heads, float32, on host memory.
//
//   q [B, Sq, Hq, D], k [B, Sk, Hkv, D], v [B, Sk, Hkv, Dv] -> out [B, Sq, Hq, Dv],
//   lse [B, Hq, Sq] (log-sum-exp of each row's scaled scores, for the backward pass).
//   Query head h reads kv head h / (Hq / Hkv). s_j = scale * q . k_j over the visible keys,
//   out = softmax(s) . v. Causal: key j is visible to query i iff kpos[j] <= qpos[i] and, given
//   first keys, qfirst[i] <= kpos[j] (each query's lowest visible key position: the start of its
//   document when documents are packed into one sequence); positions default to 0..Sq-1 and
//   0..Sk-1, and an array may hold S entries (shared by the batch) or B * S ([B, S] order),
//   qfirst as qpos. A query that sees no key outputs zeros and lse = -inf.
//
// Forward: online softmax (flash style) over blocks of 16 (AVX-512) or 8 (AVX2) keys, so memory
// stays O(S * D), never O(S^2): per block the running max and sum are rescaled and the output
// accumulator with them. A key block that no query of a query block sees (every key after the
// latest query, or before the earliest first key) is skipped. Backward recomputes p = exp(s - lse) per block and uses
// delta_i = dout_i . out_i; dq, dk, dv are overwritten.
// Determinism: every output element is computed by one task in a fixed order, whatever the
// thread count. Precision: float32 arithmetic with FMA (the scalar path runs the float64
// reference and rounds once).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_features.h"

namespace pleat {

struct AttnArgs {
  const float* q;
  const float* k;
  const float* v;
  size_t b, sq, sk, hq, hkv, d, dv;
  float scale;
  bool causal;
  const int32_t* qpos;  // null (0..Sq-1), or qpos_len = Sq or B * Sq entries
  size_t qpos_len;
  const int32_t* kpos;  // null (0..Sk-1), or kpos_len = Sk or B * Sk entries
  size_t kpos_len;
  const int32_t* qfirst;  // null (no lower bound), or qfirst_len = Sq or B * Sq entries
  size_t qfirst_len;
};

// Forward. Exactly one of lse32 / lse64 may be non-null (or neither). Returns false when
// scratch memory cannot be allocated.
bool attention_forward(Isa isa, const AttnArgs& a, float* out, float* lse32, double* lse64);

// Backward given dout, the forward's out and lse (one of lse32 / lse64). Writes dq [like q],
// dk [like k], dv [like v]. Returns false when scratch memory cannot be allocated.
bool attention_backward(Isa isa, const AttnArgs& a, const float* out, const float* dout,
                        const float* lse32, const double* lse64, float* dq, float* dk, float* dv);

// float64 references (the Isa::Scalar paths): one query row at a time, straight from the
// definition.
void attention_forward_ref(const AttnArgs& a, float* out, float* lse32, double* lse64);
void attention_backward_ref(const AttnArgs& a, const float* out, const float* dout,
                            const float* lse32, const double* lse64, float* dq, float* dk,
                            float* dv);

}  // namespace pleat
