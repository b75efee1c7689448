/**
 * AttentionSinks: attention whose softmax has one more logit per head that takes probability and
 * contributes no value (a "sink": Megatron's --softmax-type learnable, GPT-OSS's sinks; off-by-one
 * is the sink fixed at 0). For query i of head h with the visible keys' scores s_j and the sink
 * logit z_h (not scaled): p_j = exp(s_j) / (exp(z_h) + sum_k exp(s_k)), out_i = sum_j p_j v_j.
 *
 * The attention kernels stay as they are. The forward's out' and row log-sum-exp lse' over the
 * keys become lse = log(exp(lse') + exp(z_h)) and out = out' exp(lse' - lse) (a row with no visible
 * key: lse = z_h, out zero). The backward kernels, given these out and lse, give the right
 * gradients of q, k and v: they recompute p_j = exp(s_j - lse) (the true probabilities) and
 * delta = g . out = sum_j p_j (g . v_j), and the sink's value being zero adds nothing else. The sink
 * logit's own gradient: dz_h = -sum over the head's rows of exp(z_h - lse) (g . out).
 */
import type * as DType from "../DType.js"

/** The dims the sinks need: batch, query rows, query heads, value width. */
export interface SinkDims {
  readonly b: number
  readonly sq: number
  readonly hq: number
  readonly dv: number
}

/**
 * Folds the sinks `z` (one logit per query head) into a forward's `out` [B, Sq, Hq, Dv] and `lse`
 * [B, Hq, Sq] in place.
 * @category combinators
 */
export const fold = (out: DType.Storage, lse: Float64Array, z: ArrayLike<number>, l: SinkDims): void => {
  for (let bi = 0; bi < l.b; bi++)
    for (let h = 0; h < l.hq; h++) {
      const sink = z[h] as number
      for (let i = 0; i < l.sq; i++) {
        const row = (bi * l.hq + h) * l.sq + i
        const m = lse[row] as number
        if (m === Number.NEGATIVE_INFINITY) {
          lse[row] = sink
          continue
        }
        const top = Math.max(m, sink)
        const total = top + Math.log(Math.exp(m - top) + Math.exp(sink - top))
        lse[row] = total
        const keep = Math.exp(m - total)
        const o = ((bi * l.sq + i) * l.hq + h) * l.dv
        for (let e = 0; e < l.dv; e++) out[o + e] = (out[o + e] as number) * keep
      }
    }
}

/**
 * The gradient of the sink logits (one per query head) from the output's gradient `g`, the folded
 * `out` and `lse` (fold), in float64.
 * @category combinators
 */
export const gradient = (g: ArrayLike<number>, out: ArrayLike<number>, lse: Float64Array, z: ArrayLike<number>, l: SinkDims): Float64Array => {
  const dz = new Float64Array(l.hq)
  for (let bi = 0; bi < l.b; bi++)
    for (let h = 0; h < l.hq; h++)
      for (let i = 0; i < l.sq; i++) {
        const o = ((bi * l.sq + i) * l.hq + h) * l.dv
        let delta = 0
        for (let e = 0; e < l.dv; e++) delta += (g[o + e] as number) * (out[o + e] as number)
        if (delta === 0) continue
        dz[h] = (dz[h] as number) - Math.exp((z[h] as number) - (lse[(bi * l.hq + h) * l.sq + i] as number)) * delta
      }
  return dz
}
