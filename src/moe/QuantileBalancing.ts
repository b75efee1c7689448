/**
 * QuantileBalancing: Megatron-Core's quantile-balancing routing (load-balancing type
 * "quantile_balancing", semantics.md 2.1.9): a per-expert bias beta [E] on the router's logits
 * that picks the experts, moved once per global batch so that every expert gets about m * k / E
 * of a micro-batch's m tokens; no aux loss.
 *
 * Selection on the micro-batch's logits S [m, E] (all its tokens: the tp-cp members' rows
 * gathered in group-rank order): each token's experts are the top k of S - beta, and alpha_t,
 * the (k+1)-th largest value of its row, is its cutoff. In training each forward also gives
 * beta_local [E], expert e's (col_target + 1)-th largest of S_te - alpha_t over the m tokens,
 * col_target = m * k / E (m * k must be a multiple of E); the forwards of a global batch add
 * beta_local up (`accum`, `count`). After the global batch: avg = accum / max(count, 1), averaged
 * over the dp-cp group; beta' = ema * beta + (1 - ema) * avg, then re-centred to mean 0. The
 * probs come from the router's score function at the selected experts (Router's precomputed
 * selection), so beta never reaches them; evaluation selects with beta and updates nothing.
 *
 * Decisions (deterministic where the reference is not): computed in float64; ties in every
 * top-k go to the lower index (experts in a row, tokens in a column); a full-recompute replay
 * adds nothing (the first forward's beta_local counts once).
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import * as Group from "../comm/Group.js"
import type * as DType from "../tensor/DType.js"
import { topk } from "../tensor/ops/TopK.js"
import * as Tensor from "../tensor/Tensor.js"

/**
 * A layer's bias and the beta_local sum of the global batch so far.
 * @category models
 */
export interface QuantileState {
  readonly beta: ReadonlyArray<number>
  readonly accum: ReadonlyArray<number>
  readonly count: number
}

/**
 * A layer's state with `beta` and nothing summed yet (a fresh global batch).
 * @category constructors
 */
export const withBeta = (beta: ReadonlyArray<number>): QuantileState => ({ beta: [...beta], accum: new Array<number>(beta.length).fill(0), count: 0 })

/**
 * A layer's state before any update: beta 0.
 * @category constructors
 */
export const initial = (experts: number): QuantileState => withBeta(new Array<number>(experts).fill(0))

/**
 * The selection of every token of `logits` [rows, cols] under `beta`: [rows * k] experts, best
 * first, and each row's cutoff alpha (its (k+1)-th largest of logits - beta). Needs k < cols.
 * @category mapping
 */
export const select = (
  logits: DType.Storage,
  rows: number,
  cols: number,
  k: number,
  beta: ReadonlyArray<number>,
): { readonly indices: Int32Array; readonly alpha: Float64Array } => {
  const shifted = new Float64Array(rows * cols)
  for (let t = 0; t < rows; t++) for (let e = 0; e < cols; e++) shifted[t * cols + e] = (logits[t * cols + e] as number) - (beta[e] as number)
  const top = topk(Tensor.fromStorage(shifted, [rows, cols]), k + 1)
  const indices = new Int32Array(rows * k)
  const alpha = new Float64Array(rows)
  for (let t = 0; t < rows; t++) {
    for (let j = 0; j < k; j++) indices[t * k + j] = top.indices[t * (k + 1) + j] as number
    alpha[t] = top.values.data[t * (k + 1) + k] as number
  }
  return { indices, alpha }
}

/**
 * beta_local [cols]: each expert's (col_target + 1)-th largest of logits - alpha over the rows,
 * col_target = rows * k / cols (a whole number: MoeSettings checks it for every micro-batch).
 * @category mapping
 */
export const localBeta = (logits: DType.Storage, rows: number, cols: number, k: number, alpha: Float64Array): Float64Array => {
  const target = (rows * k) / cols
  const columns = new Float64Array(cols * rows)
  for (let t = 0; t < rows; t++) for (let e = 0; e < cols; e++) columns[e * rows + t] = (logits[t * cols + e] as number) - (alpha[t] as number)
  const top = topk(Tensor.fromStorage(columns, [cols, rows]), target + 1).values.data
  return Float64Array.from({ length: cols }, (_, e) => top[e * (target + 1) + target] as number)
}

/**
 * Adds a training forward's beta_local to the global batch's sum.
 * @category combinators
 */
export const accumulate = (state: QuantileState, local: ArrayLike<number>): QuantileState => ({
  beta: state.beta,
  accum: state.accum.map((a, e) => a + (local[e] as number)),
  count: state.count + 1,
})

/**
 * After a global batch: the forwards' mean beta_local averaged over `dpCp`, mixed into beta by
 * `ema`, re-centred to mean 0; the sum starts again. Every member computes the same beta.
 * @category combinators
 */
export const update = (state: QuantileState, dpCp: Group.Group, ema: number) => {
  const mean = state.accum.map((a) => a / Math.max(state.count, 1))
  return Effect.map(Comm.allReduce(dpCp, Tensor.fromArray(mean, [1, mean.length], { dtype: "float64" })), (summed): QuantileState => {
    const size = dpCp.ranks.length
    const mixed = state.beta.map((b, e) => ema * b + (1 - ema) * ((summed.data[e] as number) / size))
    const centre = mixed.reduce((a, b) => a + b, 0) / Math.max(mixed.length, 1)
    return withBeta(mixed.map((b) => b - centre))
  })
}

/**
 * The selection of this rank's tokens, [T * k], from the logits of the whole micro-batch (its
 * `tpCp` members' rows gathered in group-rank order; none: this rank's alone), and in training
 * (`update`) the micro-batch's beta_local.
 * @category combinators
 */
export const selectGathered = (logits: Tensor.Tensor, tpCp: Group.Group | undefined, k: number, beta: ReadonlyArray<number>, update: boolean) =>
  Effect.gen(function* () {
    const [rows, cols] = logits.shape as [number, number]
    const gathered = tpCp === undefined || tpCp.ranks.length === 1 ? logits : yield* Comm.allGather(tpCp, logits)
    const all = gathered.readHost()
    const total = gathered.shape[0] as number
    const chosen = select(all, total, cols, k, beta)
    const first = tpCp === undefined ? 0 : Group.localRank(tpCp, (yield* Comm.Communicator).rank) * rows
    return {
      indices: chosen.indices.slice(first * k, (first + rows) * k),
      local: update ? localBeta(all, total, cols, k, chosen.alpha) : undefined,
    }
  })
