/**
 * AuxLoss: the router's load-balancing losses and z-loss (semantics.md 2.1.3, 2.1.6, 2.2.5).
 *
 * Shape legend: T tokens, E experts, K topk, S positions of a sequence, B sequences
 * (token t = s * B + b, 2.0), N rows of a scores matrix.
 *
 *   routingScoresForAuxLoss(logits_TE, K, fn) -> scores_TE, map [T, E]       (2.2.5)
 *   switchLoadBalancingLoss(scores_NE', tpe_E', Tt, K, E, coeff) -> []       (2.1.3)
 *       = coeff * E / (K * Tt^2) * sum_e (sum_n scores[n, e]) * tpe[e]
 *   auxLoss        : switch over all T tokens, tpe = column sums of the aux map (reduced over
 *                    tp_cp when given), Tt = T * |tp_cp|
 *   seqAuxLoss     : scores viewed as [S, B*E], per-(b, e) counts, Tt = S * |tp_cp|, / B
 *                    (the mean over sequences of each sequence's switch loss)
 *   globalAuxLoss  : tpe = running mean of the tp_dp_cp-reduced counts over the micro-batches
 *                    of the global batch (`GlobalCounts`), Tt = T * |tp_dp_cp|
 *   zLoss(logits_TE, coeff) = coeff / |tp_cp| * mean_t logsumexp(logits[t, :])^2        (2.1.6)
 *
 * Single rank: the cross-rank reductions are not done here. Callers that run on a group pass
 * the already-reduced counts (`tokensPerExpert`) and the group size (`groupSize`); by default
 * the counts are this rank's and the group has size 1.
 *
 * Decisions:
 *   - no padding mask yet (every token is valid): local_N = T, Tt = T * groupSize;
 *   - Tt = 0 (no tokens) gives a loss of 0 and a zero gradient, not the reference's 0/0 NaN;
 *     z-loss over T = 0 is 0 (the reference clamps its denominator to 1, the same value);
 *   - the sum is taken as sum_e(agg_e * tpe_e) * (E * coeff / (K * Tt * Tt)), in float64.
 * Gradients flow into the scores (the counts are constants) and, for z-loss, into the logits:
 *   d switch / d scores[n, e] = coeff * E / (K * Tt^2) * tpe[e]
 *   d z / d logits[t, j]      = coeff' / T * 2 * lse_t * softmax(logits[t, :])_j
 */
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import { reshape } from "../tensor/ops/Shape.js"
import { softmax } from "../tensor/ops/Softmax.js"
import { topk } from "../tensor/ops/TopK.js"
import * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import type { ScoreFunction } from "./Router.js"
import * as ScoreFunctions from "./ScoreFunctions.js"
import * as RoutingMap from "./RoutingMap.js"

/**
 * Aux-loss scores and the map they count (2.2.5).
 * @category models
 */
export interface AuxScores {
  /** [T, E]; differentiable w.r.t. the logits. */
  readonly scores: Tensor.Tensor
  /** Plain top-k of the scores (no expert bias, no groups, no dropping). */
  readonly routingMap: RoutingMap.RoutingMap
}

/**
 * Options shared by the load-balancing losses.
 * @category models
 */
export interface LossOptions {
  readonly topk: number
  readonly coeff: number
  /** Counts already reduced over the loss's group; default: this rank's counts. */
  readonly tokensPerExpert?: ArrayLike<number> | undefined
  /** The size of the loss's group (tp_cp, or tp_dp_cp for the global loss); default 1. */
  readonly groupSize?: number | undefined
}

const dims = (op: string, t: Tensor.Tensor): readonly [number, number] => {
  if (t.rank !== 2) throw TensorError.shape(op, `expects [T, E], got ${TensorError.formatShape(t.shape)}`)
  return t.shape as readonly [number, number]
}

/**
 * f(logits) normalized over all E, f sigmoid or sqrtsoftplus: s / (sum_e s + 1e-20), one op
 * with its backward.
 * @category combinators
 */
const normalizedScores = (logits: Tensor.Tensor, f: ScoreFunctions.Elementwise): Tensor.Tensor => {
  const [t, e] = dims("normalizedScores", logits)
  const x = logits.readHost()
  const sig = new Float64Array(t * e)
  const denom = new Float64Array(t)
  const out = DType.allocate(logits.dtype, t * e)
  for (let r = 0; r < t; r++) {
    let sum = 0
    for (let j = 0; j < e; j++) {
      const s = f.value(x[r * e + j] as number)
      sig[r * e + j] = s
      sum += s
    }
    denom[r] = sum + 1e-20
    for (let j = 0; j < e; j++) out[r * e + j] = (sig[r * e + j] as number) / (denom[r] as number)
  }
  return Autograd.hostResult("normalizedScores", [logits], out, [t, e], (g) => {
    const dx = DType.allocate(g.dtype, t * e)
    const gy = g.readHost()
    for (let r = 0; r < t; r++) {
      const d = denom[r] as number
      let dot = 0
      for (let j = 0; j < e; j++) dot += (gy[r * e + j] as number) * (sig[r * e + j] as number)
      for (let j = 0; j < e; j++) {
        dx[r * e + j] = ((gy[r * e + j] as number) / d - dot / (d * d)) * f.derivative(x[r * e + j] as number, sig[r * e + j] as number)
      }
    }
    return [Tensor.fromStorage(dx, logits.shape, { device: g.device })]
  })
}

/**
 * `compute_routing_scores_for_aux_loss` (2.2.5): scores over all experts (softmax, or sigmoid
 * or sqrtsoftplus normalized over E) and the plain top-k map of them (ties to the lower expert).
 * @category combinators
 */
export const routingScoresForAuxLoss = (logits: Tensor.Tensor, k: number, scoreFunction: ScoreFunction): AuxScores => {
  const [t, e] = dims("routingScoresForAuxLoss", logits)
  const scores = scoreFunction === "softmax" ? softmax(logits) : normalizedScores(logits, ScoreFunctions.elementwise[scoreFunction])
  const indices = topk(Tensor.detach(scores), k).indices
  return { scores, routingMap: RoutingMap.fromIndices(t, e, indices, k) }
}

/**
 * `switch_load_balancing_loss` (2.1.3) on scores [N, E'] and counts [E']; E is the real number
 * of experts (E' = B * E for the sequence loss). A scalar tensor.
 * @category combinators
 */
export const switchLoadBalancingLoss = (
  scores: Tensor.Tensor,
  tokensPerExpert: ArrayLike<number>,
  totalTokens: number,
  k: number,
  numExperts: number,
  coeff: number,
): Tensor.Tensor => {
  const [n, cols] = dims("switchLoadBalancingLoss", scores)
  if (tokensPerExpert.length !== cols) {
    throw TensorError.shape("switchLoadBalancingLoss", `${tokensPerExpert.length} counts for scores ${TensorError.formatShape(scores.shape)}`)
  }
  const factor = totalTokens === 0 ? 0 : (numExperts * coeff) / (k * totalTokens * totalTokens)
  const s = scores.readHost()
  let total = 0
  for (let c = 0; c < cols; c++) {
    let agg = 0
    for (let r = 0; r < n; r++) agg += s[r * cols + c] as number
    total += agg * (tokensPerExpert[c] as number)
  }
  const out = DType.allocate(scores.dtype, 1)
  out[0] = total * factor
  return Autograd.hostResult("switchLoadBalancingLoss", [scores], out, [], (g) => {
    const dx = DType.allocate(g.dtype, n * cols)
    const gv = (g.readHost()[0] as number) * factor
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < cols; c++) dx[r * cols + c] = gv * (tokensPerExpert[c] as number)
    }
    return [Tensor.fromStorage(dx, scores.shape, { device: g.device })]
  })
}

/**
 * sum over i of scores[i] * weights[i], on the host where the scores are (a loss term: the
 * bits of `sumAll(mul(scores, w))` with w = weights stored in the scores' dtype: each product
 * rounded to it, summed in float64 in index order); the gradient g * w, rounded likewise.
 * @category combinators
 */
export const weightedSum = (scores: Tensor.Tensor, weights: ArrayLike<number>): Tensor.Tensor => {
  if (weights.length !== scores.size) throw TensorError.shape("weightedSum", `${weights.length} weights for scores ${TensorError.formatShape(scores.shape)}`)
  const s = scores.readHost()
  const w = DType.allocate(scores.dtype, scores.size)
  for (let i = 0; i < w.length; i++) w[i] = weights[i] as number
  const product = DType.allocate(scores.dtype, 1)
  let total = 0
  for (let i = 0; i < w.length; i++) {
    product[0] = (s[i] as number) * (w[i] as number)
    total += product[0] as number
  }
  const out = DType.allocate(scores.dtype, 1)
  out[0] = total
  return Autograd.hostResult("weightedSum", [scores], out, [], (g) => {
    const dx = DType.allocate(g.dtype, w.length)
    const gv = g.readHost()[0] as number
    for (let i = 0; i < dx.length; i++) dx[i] = gv * (w[i] as number)
    return [Tensor.fromStorage(dx, scores.shape, { device: g.device })]
  })
}

const groupSizeOf = (options: { readonly groupSize?: number | undefined }): number => {
  const g = options.groupSize ?? 1
  if (!Number.isSafeInteger(g) || g < 1) throw TensorError.shape("auxLoss", `groupSize must be a positive integer, got ${g}`)
  return g
}

/**
 * `aux_loss` (micro-batch level, 2.1.3): the switch loss over all T tokens of the aux scores
 * and aux map; counts reduced over tp_cp when given, Tt = T * |tp_cp|.
 * @category combinators
 */
export const auxLoss = (scores: Tensor.Tensor, routingMap: RoutingMap.RoutingMap, options: LossOptions): Tensor.Tensor => {
  const [t, e] = dims("auxLoss", scores)
  const tpe = options.tokensPerExpert ?? RoutingMap.tokensPerExpert(routingMap)
  return switchLoadBalancingLoss(scores, tpe, t * groupSizeOf(options), options.topk, e, options.coeff)
}

/**
 * Options of the sequence-level loss.
 * @category models
 */
export interface SeqLossOptions extends LossOptions {
  /** B, the sequences of the micro-batch (token t = s * B + b); T must be a multiple. */
  readonly batch: number
}

/**
 * `seq_aux_loss` (2.1.3): the mean over the B sequences of each sequence's switch loss. Counts
 * are per (b, e), [B * E] in column order b * E + e, reduced over tp_cp when given.
 * @category combinators
 */
export const seqAuxLoss = (scores: Tensor.Tensor, routingMap: RoutingMap.RoutingMap, options: SeqLossOptions): Tensor.Tensor => {
  const [t, e] = dims("seqAuxLoss", scores)
  const b = options.batch
  if (!Number.isSafeInteger(b) || b < 1 || t % b !== 0) {
    throw TensorError.shape("seqAuxLoss", `batch ${b} does not divide T = ${t} (tokens are s * B + b)`)
  }
  const s = t / b
  let tpe: ArrayLike<number> | undefined = options.tokensPerExpert
  if (tpe === undefined) {
    const counts = new Array<number>(b * e).fill(0)
    for (let tok = 0; tok < t; tok++) {
      const col = (tok % b) * e
      for (let j = 0; j < e; j++) counts[col + j] = (counts[col + j] as number) + (routingMap.mask[tok * e + j] as number)
    }
    tpe = counts
  }
  const view = reshape(scores, [s, b * e])
  const perBatch = switchLoadBalancingLoss(view, tpe, s * groupSizeOf(options), options.topk, e, options.coeff)
  const out = DType.allocate(scores.dtype, 1)
  out[0] = (perBatch.readHost()[0] as number) / b
  return Autograd.hostResult("seqAuxLossMean", [perBatch], out, [], (g) => [Tensor.fromArray([(g.readHost()[0] as number) / b], [], { dtype: g.dtype, device: g.device })])
}

/**
 * The running token counts of the global aux loss: the sum of the tp_dp_cp-reduced counts of
 * the micro-batches seen so far in the global batch, and how many there were (2.1.3, 6.11).
 * @category models
 */
export interface GlobalCounts {
  readonly tokensPerExpert: ReadonlyArray<number>
  readonly steps: number
}

/**
 * No micro-batch seen yet (the state after a reset at the end of a global batch).
 * @category constructors
 */
export const emptyGlobalCounts = (numExperts: number): GlobalCounts => ({
  tokensPerExpert: Object.freeze(new Array<number>(numExperts).fill(0)),
  steps: 0,
})

/**
 * The counts after one more micro-batch with (already reduced) counts `tpe`.
 * @category combinators
 */
export const addGlobalCounts = (acc: GlobalCounts, tpe: ArrayLike<number>): GlobalCounts => {
  if (tpe.length !== acc.tokensPerExpert.length) {
    throw TensorError.shape("addGlobalCounts", `${tpe.length} counts for ${acc.tokensPerExpert.length} experts`)
  }
  return {
    tokensPerExpert: Object.freeze(acc.tokensPerExpert.map((c, e) => c + (tpe[e] as number))),
    steps: acc.steps + 1,
  }
}

/**
 * The running mean the global loss uses: sum / steps (0 before any step).
 * @category mapping
 */
const meanGlobalCounts = (acc: GlobalCounts): Array<number> => acc.tokensPerExpert.map((c) => (acc.steps === 0 ? 0 : c / acc.steps))

/**
 * `global_aux_loss` (2.1.3): the switch loss with the running-mean counts of `counts` (this
 * micro-batch included), Tt = T * |tp_dp_cp|. Without counts: this rank's map, one step.
 * @category combinators
 */
export const globalAuxLoss = (
  scores: Tensor.Tensor,
  routingMap: RoutingMap.RoutingMap,
  options: Omit<LossOptions, "tokensPerExpert"> & { readonly counts?: GlobalCounts | undefined },
): Tensor.Tensor => {
  const [t, e] = dims("globalAuxLoss", scores)
  const counts = options.counts ?? addGlobalCounts(emptyGlobalCounts(e), RoutingMap.tokensPerExpert(routingMap))
  return switchLoadBalancingLoss(scores, meanGlobalCounts(counts), t * groupSizeOf(options), options.topk, e, options.coeff)
}

/**
 * z-loss (2.1.6): coeff / groupSize * mean over tokens of logsumexp(logits[t, :])^2 (0 when
 * T = 0). groupSize is |tp_cp|.
 * @category combinators
 */
export const zLoss = (logits: Tensor.Tensor, coeff: number, groupSize = 1): Tensor.Tensor => {
  const [t, e] = dims("zLoss", logits)
  const c = coeff / groupSizeOf({ groupSize })
  const x = logits.readHost()
  const lse = new Float64Array(t)
  let total = 0
  for (let r = 0; r < t; r++) {
    let max = Number.NEGATIVE_INFINITY
    for (let j = 0; j < e; j++) max = Math.max(max, x[r * e + j] as number)
    let sum = 0
    for (let j = 0; j < e; j++) sum += Math.exp((x[r * e + j] as number) - max)
    lse[r] = max + Math.log(sum)
    total += (lse[r] as number) * (lse[r] as number)
  }
  const denom = Math.max(t, 1)
  const out = DType.allocate(logits.dtype, 1)
  out[0] = (c * total) / denom
  return Autograd.hostResult("zLoss", [logits], out, [], (g) => {
    const dx = DType.allocate(g.dtype, t * e)
    const gv = ((g.readHost()[0] as number) * c) / denom
    for (let r = 0; r < t; r++) {
      const l = lse[r] as number
      for (let j = 0; j < e; j++) dx[r * e + j] = gv * 2 * l * Math.exp((x[r * e + j] as number) - l)
    }
    return [Tensor.fromStorage(dx, logits.shape, { device: g.device })]
  })
}
