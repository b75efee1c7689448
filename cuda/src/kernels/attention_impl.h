// Attention kernel bodies, written once over a vector traits type V and included by
// attention.cc once per ISA, inside `#pragma GCC target` and a namespace of its own (so there is
// deliberately no include guard). V provides W (lanes), F (vector), M (lane mask) and the
// operations used below. Blocks: QB queries of one head x W keys; keys are packed transposed
// (kt[(kb * D + e) * W + lane]) so a score block is D broadcast-FMAs with no horizontal sums.

constexpr int W = V::W;
constexpr int QB = 8;  // query rows per block: 8 independent FMA chains cover the FMA latency
using F = V::F;
using M = V::M;

// Scores of the QB rows against key block kb, scaled, with invisible lanes set to -inf (row r
// sees the keys with qf[r] <= position <= qp[r] when causal).
inline void block_scores(const Geo& g, const float* const* qrow, const int32_t* qp, const int32_t* qf,
                         const float* kt, const int32_t* kpos, size_t kb, F* s) {
  const size_t d = g.a.d;
  for (int r = 0; r < QB; ++r) s[r] = V::zero();
  const float* kb_t = kt + kb * d * W;
  for (size_t e = 0; e < d; ++e) {
    const F kv = V::load(kb_t + e * W);
#pragma GCC unroll 8
    for (int r = 0; r < QB; ++r) s[r] = V::fmadd(V::set1(qrow[r][e]), kv, s[r]);
  }
  const size_t valid = g.a.sk - kb * W < static_cast<size_t>(W) ? g.a.sk - kb * W : W;
  const F scale = V::set1(g.a.scale), ninf = V::set1(-INFINITY);
  for (int r = 0; r < QB; ++r) {
    const M vis = V::visible(kpos + kb * W, qp[r], qf[r], valid, g.a.causal);
    s[r] = V::select(vis, V::mul(s[r], scale), ninf);
  }
}

// Whether no row of a query block sees key block kb: every key after the latest query
// position (qmax) or before the earliest first key (qfmin). Such blocks are skipped, which
// changes no bits: a row that sees none of a block's keys leaves its state as it was.
inline bool unseen(const AttnArgs& a, const Packed& pk, size_t kb, int32_t qmax, int32_t qfmin) {
  return a.causal && (pk.kmin[kb] > qmax || pk.kmax[kb] < qfmin);
}

// Forward for queries [i0, i1) of every head served by kv head kh of batch entry b.
inline void forward_range(const Geo& g, size_t b, size_t kh, size_t i0, size_t i1, const Packed& pk,
                          float* obuf, float* pbuf, float* out, float* lse32, double* lse64) {
  const AttnArgs& a = g.a;
  const size_t nkb = (a.sk + W - 1) / W;
  const size_t dvp = (a.dv + W - 1) / W * W;
  for (size_t h = kh * g.group; h < (kh + 1) * g.group; ++h) {
    for (size_t ib = i0; ib < i1; ib += QB) {
      const size_t rows = i1 - ib < static_cast<size_t>(QB) ? i1 - ib : QB;
      const float* qrow[QB];
      int32_t qp[QB], qf[QB];
      int32_t qmax = INT32_MIN, qfmin = INT32_MAX;
      float m[QB], l[QB], corr[QB];
      for (int r = 0; r < QB; ++r) {
        const bool real = static_cast<size_t>(r) < rows;
        // Padding rows read zeros and see every key; their results are never stored.
        qrow[r] = real ? a.q + g.q_off(b, ib + r, h) : pk.zeros;
        qp[r] = real ? g.qp(b, ib + r) : INT32_MAX;
        qf[r] = real ? g.qf(b, ib + r) : INT32_MIN;
        if (real && qp[r] > qmax) qmax = qp[r];
        if (real && qf[r] < qfmin) qfmin = qf[r];
        m[r] = -INFINITY;
        l[r] = 0.0f;
      }
      for (size_t i = 0; i < QB * dvp; ++i) obuf[i] = 0.0f;
      for (size_t kb = 0; kb < nkb; ++kb) {
        if (unseen(a, pk, kb, qmax, qfmin)) continue;  // no key of the block is visible
        F s[QB];
        block_scores(g, qrow, qp, qf, pk.kt, pk.kpos, kb, s);
        for (int r = 0; r < QB; ++r) {
          const float bm = V::hmax(s[r]);
          // Nothing visible to this row here (every lane -inf, so s - bm would be NaN): no change,
          // p = 0 for the value update below, the running max and sum kept.
          if (bm == -INFINITY) {
            V::store(pbuf + r * W, V::zero());
            corr[r] = 1.0f;
            continue;
          }
          const float mn = m[r] > bm ? m[r] : bm;
          // exp(0) = 1 exactly: a running max the block does not raise (most blocks, past a
          // row's first keys) skips the scalar exp, with the same bits.
          corr[r] = m[r] == -INFINITY ? 0.0f : m[r] == mn ? 1.0f : std::exp(m[r] - mn);
          const F p = V::exp(V::sub(s[r], V::set1(mn)));
          V::store(pbuf + r * W, p);
          l[r] = l[r] * corr[r] + V::hsum(p);
          m[r] = mn;
        }
        // obuf[r] = obuf[r] * corr[r] + sum_j p[r][j] v_j, one W-wide column chunk at a time so
        // the QB accumulators stay in registers across the keys of the block.
        const size_t valid = a.sk - kb * W < static_cast<size_t>(W) ? a.sk - kb * W : W;
        for (size_t c = 0; c < a.dv; c += W) {
          const size_t width = a.dv - c < static_cast<size_t>(W) ? a.dv - c : W;
          F acc[QB];
          for (int r = 0; r < QB; ++r) acc[r] = V::mul(V::load(obuf + r * dvp + c), V::set1(corr[r]));
          for (size_t jj = 0; jj < valid; ++jj) {
            const float* vrow = a.v + g.v_off(b, kb * W + jj, kh) + c;
            const F vv = width == static_cast<size_t>(W) ? V::load(vrow) : V::load_n(vrow, width);
#pragma GCC unroll 8
            for (int r = 0; r < QB; ++r) acc[r] = V::fmadd(V::set1(pbuf[r * W + jj]), vv, acc[r]);
          }
          for (int r = 0; r < QB; ++r) V::store(obuf + r * dvp + c, acc[r]);
        }
      }
      for (size_t r = 0; r < rows; ++r) {
        float* orow = out + g.o_off(b, ib + r, h);
        const size_t li = g.lse_off(b, h, ib + r);
        const bool empty = l[r] == 0.0f;
        const float lse = empty ? -INFINITY : m[r] + std::log(l[r]);
        if (lse32 != nullptr) lse32[li] = lse;
        if (lse64 != nullptr) lse64[li] = empty ? -INFINITY : static_cast<double>(m[r]) + std::log(static_cast<double>(l[r]));
        const F inv = V::set1(empty ? 0.0f : 1.0f / l[r]);
        for (size_t c = 0; c < a.dv; c += W) {
          const size_t width = a.dv - c < static_cast<size_t>(W) ? a.dv - c : W;
          V::store_n(orow + c, V::mul(V::load(obuf + r * dvp + c), inv), width);
        }
      }
    }
  }
}

// dst row jj (stride `stride`, `dim` wide) += sum_r coef[r * W + jj] * src[r], for jj < keys.
inline void accumulate_rows(size_t dim, size_t keys, const float* const* src, const float* coef,
                            float* dst, size_t stride) {
  for (size_t c = 0; c < dim; c += W) {
    const size_t width = dim - c < static_cast<size_t>(W) ? dim - c : W;
    F x[QB];
    for (int r = 0; r < QB; ++r) x[r] = V::load_n(src[r] + c, width);
    for (size_t jj = 0; jj < keys; ++jj) {
      float* row = dst + jj * stride + c;
      F lo = V::load_n(row, width), hi = V::zero();
#pragma GCC unroll 4
      for (int r = 0; r < QB / 2; ++r) {
        lo = V::fmadd(V::set1(coef[r * W + jj]), x[r], lo);
        hi = V::fmadd(V::set1(coef[(r + QB / 2) * W + jj]), x[r + QB / 2], hi);
      }
      V::store_n(row, V::add(lo, hi), width);
    }
  }
}

// Query blocks a backward pass takes together against each key block: the key block's dk and
// dv rows are updated in `tile` (L1) by all of them and written back once, instead of being read
// and written from memory by every block of QB queries (a kv head's dk and dv, 512 KB at the
// realistic shape's 1,024 keys of 64 floats, streamed 128 times over). Each element receives the
// same updates in the same order: the same bits.
constexpr int QBlocks = 8;

// Backward for kv head kh of batch entry b: all its query heads, all queries, all keys. dq rows
// of those heads and dk / dv rows of kh were zeroed by the caller; this task is their only
// writer. delta[(h - kh * group) * Sq + i] = dout_i . out_i. `tile`: W * (d + dv) floats.
inline void backward_task(const Geo& g, size_t b, size_t kh, const Packed& pk, const float* vt,
                          const float* delta, float* pbuf, float* dsbuf, float* tile, const float* dout,
                          const float* lse32, const double* lse64, float* dq, float* dk, float* dv) {
  const AttnArgs& a = g.a;
  const size_t nkb = (a.sk + W - 1) / W;
  float* tk = tile;
  float* tv = tile + W * a.d;
  struct Rows {
    const float* q[QB];
    const float* g[QB];
    float* dq[QB];
    int32_t qp[QB], qf[QB];
    int32_t qmax, qfmin;
    float lse[QB], dl[QB];
  };
  Rows blocks[QBlocks];
  for (size_t h = kh * g.group; h < (kh + 1) * g.group; ++h) {
    for (size_t ib0 = 0; ib0 < a.sq; ib0 += QB * QBlocks) {
      int nblocks = 0;
      for (size_t ib = ib0; ib < a.sq && ib < ib0 + QB * QBlocks; ib += QB, ++nblocks) {
        Rows& rb = blocks[nblocks];
        const size_t rows = a.sq - ib < static_cast<size_t>(QB) ? a.sq - ib : QB;
        rb.qmax = INT32_MIN;
        rb.qfmin = INT32_MAX;
        for (int r = 0; r < QB; ++r) {
          const bool real = static_cast<size_t>(r) < rows;
          const size_t li = real ? g.lse_off(b, h, ib + r) : 0;
          // Padding rows and rows that saw no key (lse = -inf) get p = 0: no contribution.
          rb.lse[r] = !real ? -INFINITY : lse32 != nullptr ? lse32[li] : static_cast<float>(lse64[li]);
          rb.q[r] = real ? a.q + g.q_off(b, ib + r, h) : pk.zeros;
          rb.g[r] = real ? dout + g.o_off(b, ib + r, h) : pk.zeros;
          rb.dq[r] = real ? dq + g.q_off(b, ib + r, h) : nullptr;
          rb.qp[r] = real ? g.qp(b, ib + r) : INT32_MAX;
          rb.qf[r] = real ? g.qf(b, ib + r) : INT32_MIN;
          rb.dl[r] = real ? delta[(h - kh * g.group) * a.sq + ib + r] : 0.0f;
          if (real && rb.lse[r] != -INFINITY && rb.qp[r] > rb.qmax) rb.qmax = rb.qp[r];
          if (real && rb.lse[r] != -INFINITY && rb.qf[r] < rb.qfmin) rb.qfmin = rb.qf[r];
        }
      }
      for (size_t kb = 0; kb < nkb; ++kb) {
        const size_t valid = a.sk - kb * W < static_cast<size_t>(W) ? a.sk - kb * W : W;
        bool held = false;  // the key block's dk and dv rows are in the tile
        for (int bi = 0; bi < nblocks; ++bi) {
          const Rows& rb = blocks[bi];
          if (rb.qmax == INT32_MIN) continue;  // no row of the block saw a key
          if (unseen(a, pk, kb, rb.qmax, rb.qfmin)) continue;
          if (!held) {
            for (size_t jj = 0; jj < valid; ++jj) {
              std::copy_n(dk + g.k_off(b, kb * W + jj, kh), a.d, tk + jj * a.d);
              std::copy_n(dv + g.v_off(b, kb * W + jj, kh), a.dv, tv + jj * a.dv);
            }
            held = true;
          }
          F s[QB], dp[QB];
          block_scores(g, rb.q, rb.qp, rb.qf, pk.kt, pk.kpos, kb, s);
          // dp[r][j] = dout_r . v_j, from v packed like k.
          for (int r = 0; r < QB; ++r) dp[r] = V::zero();
          const float* vb_t = vt + kb * a.dv * W;
          for (size_t e = 0; e < a.dv; ++e) {
            const F vv = V::load(vb_t + e * W);
#pragma GCC unroll 8
            for (int r = 0; r < QB; ++r) dp[r] = V::fmadd(V::set1(rb.g[r][e]), vv, dp[r]);
          }
          const F scale = V::set1(a.scale);
          for (int r = 0; r < QB; ++r) {
            // Invisible lanes hold s = -inf, so p = exp(-inf) = 0 there; a row with lse = -inf is
            // zeroed explicitly (its s - lse would be NaN).
            const F p = rb.lse[r] == -INFINITY ? V::zero() : V::exp(V::sub(s[r], V::set1(rb.lse[r])));
            V::store(pbuf + r * W, p);
            V::store(dsbuf + r * W, V::mul(V::mul(p, V::sub(dp[r], V::set1(rb.dl[r]))), scale));
          }
          // dk_j += sum_r ds[r][j] q_r and dv_j += sum_r p[r][j] dout_r, one W-wide chunk at a
          // time with the QB query (or dout) chunks held in registers across the keys; two
          // accumulators per row halve the dependent FMA chain.
          accumulate_rows(a.d, valid, rb.q, dsbuf, tk, a.d);
          accumulate_rows(a.dv, valid, rb.g, pbuf, tv, a.dv);
          // dq_r += sum_j ds[r][j] k_j.
          for (size_t c = 0; c < a.d; c += W) {
            const size_t width = a.d - c < static_cast<size_t>(W) ? a.d - c : W;
            F acc[QB];
            for (int r = 0; r < QB; ++r) acc[r] = rb.dq[r] != nullptr ? V::load_n(rb.dq[r] + c, width) : V::zero();
            for (size_t jj = 0; jj < valid; ++jj) {
              const F kv = V::load_n(a.k + g.k_off(b, kb * W + jj, kh) + c, width);
#pragma GCC unroll 8
              for (int r = 0; r < QB; ++r) acc[r] = V::fmadd(V::set1(dsbuf[r * W + jj]), kv, acc[r]);
            }
            for (int r = 0; r < QB; ++r) {
              if (rb.dq[r] != nullptr) V::store_n(rb.dq[r] + c, acc[r], width);
            }
          }
        }
        if (held) {
          for (size_t jj = 0; jj < valid; ++jj) {
            std::copy_n(tk + jj * a.d, a.d, dk + g.k_off(b, kb * W + jj, kh));
            std::copy_n(tv + jj * a.dv, a.dv, dv + g.v_off(b, kb * W + jj, kh));
          }
        }
      }
    }
  }
}
