/**
 * Permute: move token rows into expert-major order and back, `permute` / `unpermute` /
 * `sort_chunks_by_idxs` of the reference (semantics.md 2.2.2, 2.2.3, 2.2.8, 2.3).
 *
 * Shape legend: T tokens, E experts, H hidden, N routed rows (trues of the routing map).
 *
 *   permute(tokens_TH, map [T, E], probs_TE?) -> permuted_NH, permutedProbs_N, plan
 *     rows are the pairs (e, t) with map[t, e] in EXPERT-MAJOR order, TOKEN-ASCENDING within
 *     an expert: permuted[j] = tokens[t_j], permutedProbs[j] = probs[t_j, e_j]
 *   unpermute(permuted_NH, sortedIndices_N, T, weights_N?) -> out_TH
 *     out[t] = sum over rows j of token t (in increasing j) of permuted[j] (* weights[j])
 *   sortChunksByIndex(input_MH, splitSizes [n], sortedIdxs [n]) -> output_MH
 *     output chunk i = input chunk sortedIdxs[i] (chunks are consecutive rows of the given sizes)
 *
 * Worked example (2.3): T=3, E=4, t0 -> {0,2}, t1 -> {1,3}, t2 -> {0,1}, probs t0 (0.7, 0.3),
 * t1 (0.6, 0.4), t2 (0.5, 0.5): sortedIndices [0,2,1,2,0,1], tokensPerExpert [2,2,1,1],
 * permutedProbs [0.7,0.5,0.6,0.5,0.3,0.4]; unpermute of the permuted rows gives 2 * x[t] plain
 * and 1.0 * x[t] weighted.
 *
 * One order for every mode: a map that was padded to capacity (Dropping) holds exactly C
 * trues per expert, and the reference's drop-and-pad permute (true rows first, ascending, then
 * false rows; the first C) then lists exactly those trues in ascending order, the same rows as
 * the listing above. So padding rows appear inside their expert's block, at their token's
 * position, with prob 0.
 *
 * Invariant (2.2.3): unpermute(permute(x).permuted, idx, T)[t] = x[t] * (rows of token t), and
 * with weights = permutedProbs it is x[t] * sum_e map[t, e] * probs[t, e].
 *
 * Gradients: permute is gatherRows (backward scatter-adds: a token on k rows gets the sum of k
 * gradient rows); unpermute is a product with the weights then scatterAddRows; both are
 * differentiable w.r.t. tokens / permuted rows and the probs / weights. The sums run in
 * increasing row order, so results are the same bits on every run.
 *
 * On float32 with the addon built, each function here runs as one pass of the native dispatch
 * kernels (PermuteKernels.ts: a counting sort for the order, the gather with the probs, a
 * token-outer sum for unpermute) with the same bits; the compositions of tensor ops below are
 * the fallback and the specification (PLEAT_NATIVE_DISPATCH=off, float64, no addon, and the
 * weighted unpermute on a bf16 tape, whose product is rounded to bf16 before the sum).
 */
import { activeDispatchKernels, type DispatchKernels } from "../native/CpuDispatch.js"
import { gatherRows, scatterAddRows } from "../tensor/ops/Gather.js"
import { mul } from "../tensor/ops/Elementwise.js"
import { reshape } from "../tensor/ops/Shape.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import * as DispatchPlan from "./DispatchPlan.js"
import * as PermuteKernels from "./PermuteKernels.js"
import type * as RoutingMap from "./RoutingMap.js"

/**
 * The rows of a permute and its plan.
 * @category models
 */
export interface Permuted {
  /** `[N, ...row]`: the token rows, expert-major, token-ascending. */
  readonly permuted: Tensor.Tensor
  /** `[N]`: probs[t_j, e_j], when probs were given. */
  readonly permutedProbs: Tensor.Tensor | undefined
  /** `[N]`: the token of each row (the same as plan.sortedIndices, ready for gather / scatter). */
  readonly sortedIndices: Int32Array
  readonly tokensPerExpert: ReadonlyArray<number>
  readonly plan: DispatchPlan.DispatchPlan
}

/**
 * The expert-major, token-ascending listing of the map: token and expert of every row.
 * @category mapping
 */
export const order = (map: RoutingMap.RoutingMap): { readonly sortedIndices: Int32Array; readonly experts: Int32Array } => {
  const k = activeDispatchKernels()
  if (k !== undefined) return PermuteKernels.order(k, map)
  return orderLoop(map)
}

/** order as loops: expert-outer, token-inner (the specification of the counting sort). */
const orderLoop = (map: RoutingMap.RoutingMap): { readonly sortedIndices: Int32Array; readonly experts: Int32Array } => {
  const { numTokens: t, numExperts: e, mask } = map
  let n = 0
  for (let i = 0; i < mask.length; i++) n += mask[i] as number
  const sortedIndices = new Int32Array(n)
  const experts = new Int32Array(n)
  let j = 0
  for (let ex = 0; ex < e; ex++) {
    for (let tok = 0; tok < t; tok++) {
      if (mask[tok * e + ex] === 1) {
        sortedIndices[j] = tok
        experts[j] = ex
        j++
      }
    }
  }
  return { sortedIndices, experts }
}

/** The native kernels when they apply to these float32 tensors, else undefined (the fallback runs). */
const nativeFor = (...ts: ReadonlyArray<Tensor.Tensor | undefined>): DispatchKernels | undefined =>
  ts.every((t) => t === undefined || t.dtype === "float32") ? activeDispatchKernels() : undefined

const checkPermute = (op: string, tokens: Tensor.Tensor, map: RoutingMap.RoutingMap, probs: Tensor.Tensor | undefined): void => {
  if (tokens.rank < 1 || tokens.shape[0] !== map.numTokens) {
    throw TensorError.shape(op, `tokens ${TensorError.formatShape(tokens.shape)} do not have the map's ${map.numTokens} rows`)
  }
  if (probs !== undefined && (probs.rank !== 2 || probs.shape[0] !== map.numTokens || probs.shape[1] !== map.numExperts)) {
    throw TensorError.shape(op, `probs ${TensorError.formatShape(probs.shape)} are not [${map.numTokens}, ${map.numExperts}]`)
  }
}

/** The rows of the map (and their counts) on the kernels (whatever the dtype) or as loops. */
const orderWithCounts = (map: RoutingMap.RoutingMap) => {
  const k = activeDispatchKernels()
  if (k !== undefined) return PermuteKernels.order(k, map)
  const o = orderLoop(map)
  const tokensPerExpert = new Int32Array(map.numExperts)
  for (let j = 0; j < o.experts.length; j++) {
    const e = o.experts[j] as number
    tokensPerExpert[e] = (tokensPerExpert[e] as number) + 1
  }
  return { tokensPerExpert, ...o }
}

/** probs[t_j, e_j] of every row as tensor ops: a gather on the flat probs. */
const pairsLoop = (probs: Tensor.Tensor, sortedIndices: Int32Array, experts: Int32Array, numExperts: number): Tensor.Tensor => {
  const at = new Int32Array(sortedIndices.length)
  for (let j = 0; j < at.length; j++) at[j] = (sortedIndices[j] as number) * numExperts + (experts[j] as number)
  return gatherRows(reshape(probs, [probs.size]), at)
}

/** The plan of a permute of `map` in `order`, with the rows' probs read on demand. */
const planOf = (
  map: RoutingMap.RoutingMap,
  order: { readonly sortedIndices: Int32Array; readonly experts: Int32Array; readonly tokensPerExpert: Int32Array },
  probs: (() => ArrayLike<number>) | undefined,
): DispatchPlan.DispatchPlan => DispatchPlan.fromOrder({ numTokens: map.numTokens, numExperts: map.numExperts, ...order, probs })

/**
 * What a permute learns without moving the rows: the order (each row's token), the rows per
 * expert, the plan and each row's prob. For a dispatcher whose exchange gathers the rows
 * itself (comm Request.sendRows): the rows it sends are tokens[sortedIndices], as `permute`'s.
 * @category combinators
 */
export const route = (tokens: Tensor.Tensor, map: RoutingMap.RoutingMap, probs: Tensor.Tensor): Omit<Permuted, "permuted"> & { readonly permutedProbs: Tensor.Tensor } => {
  checkPermute("route", tokens, map, probs)
  const { sortedIndices, experts, tokensPerExpert } = orderWithCounts(map)
  const permutedProbs = pairsLoop(probs, sortedIndices, experts, map.numExperts)
  const plan = planOf(map, { sortedIndices, experts, tokensPerExpert }, () => permutedProbs.data)
  return { permutedProbs, sortedIndices, tokensPerExpert: plan.tokensPerExpert, plan }
}

/**
 * Permutes token rows into expert-major order (and gathers the probs of each row).
 * @category combinators
 */
export const permute = (tokens: Tensor.Tensor, map: RoutingMap.RoutingMap, probs?: Tensor.Tensor): Permuted => {
  checkPermute("permute", tokens, map, probs)
  const k = nativeFor(tokens, probs)
  const { sortedIndices, experts, tokensPerExpert } = orderWithCounts(map)
  let permuted: Tensor.Tensor
  let permutedProbs: Tensor.Tensor | undefined
  if (k !== undefined && probs !== undefined) {
    const both = PermuteKernels.gatherWithPairs(k, tokens, probs, sortedIndices, experts)
    permuted = both.rows
    permutedProbs = both.pairs
  } else {
    permuted = k !== undefined ? PermuteKernels.gather(k, "gatherRows", tokens, sortedIndices, map.numTokens) : gatherRows(tokens, sortedIndices)
    permutedProbs = probs === undefined ? undefined : pairsLoop(probs, sortedIndices, experts, map.numExperts)
  }
  const pairs = permutedProbs
  const plan = planOf(map, { sortedIndices, experts, tokensPerExpert }, pairs === undefined ? undefined : () => pairs.data)
  return { permuted, permutedProbs, sortedIndices, tokensPerExpert: plan.tokensPerExpert, plan }
}

const asIndex = (index: ArrayLike<number>): Int32Array => (index instanceof Int32Array ? index : Int32Array.from(index))

/**
 * Scatter-adds permuted rows back to their tokens, optionally weighted by `weights` [N].
 * @category combinators
 */
export const unpermute = (permuted: Tensor.Tensor, sortedIndices: ArrayLike<number>, numTokens: number, weights?: Tensor.Tensor): Tensor.Tensor => {
  const n = permuted.shape[0]
  if (n === undefined || sortedIndices.length !== n) {
    throw TensorError.shape("unpermute", `${sortedIndices.length} indices for permuted rows ${TensorError.formatShape(permuted.shape)}`)
  }
  if (weights !== undefined && (weights.rank !== 1 || weights.shape[0] !== n)) {
    throw TensorError.shape("unpermute", `weights ${TensorError.formatShape(weights.shape)} are not [${n}]`)
  }
  // The weighted kernel sums the float32 products; a bf16 tape rounds them first (the mul's
  // output), and the weights' gradient is the per-row sum of rank-2 rows only.
  const bf16 = permuted.tape?.roundsToBf16 === true || weights?.tape?.roundsToBf16 === true
  const k = weights === undefined || (permuted.rank === 2 && !bf16) ? nativeFor(permuted, weights) : undefined
  if (k !== undefined) {
    if (!Number.isInteger(numTokens) || numTokens < 0) throw TensorError.shape("scatterAddRows", `numRows must be an integer >= 0, got ${numTokens}`)
    try {
      return PermuteKernels.combine(k, "scatterAddRows", permuted, asIndex(sortedIndices), weights, numTokens)
    } catch (e) {
      // The kernel checks every index before it writes; an index outside is the caller's shape error.
      throw e instanceof RangeError ? TensorError.shape("scatterAddRows", e.message) : e
    }
  }
  let rows = permuted
  if (weights !== undefined) {
    const column = reshape(weights, [n, ...permuted.shape.slice(1).map(() => 1)])
    rows = mul(permuted, column)
  }
  return scatterAddRows(rows, asIndex(sortedIndices), numTokens)
}

/**
 * The row order of sort_chunks_by_idxs: output row i comes from input row index[i].
 * `sortedIdxs` must be a permutation of the chunk numbers.
 * @category mapping
 */
const chunkIndex = (splitSizes: ReadonlyArray<number>, sortedIdxs: ReadonlyArray<number>): Int32Array => {
  const n = splitSizes.length
  if (sortedIdxs.length !== n) throw TensorError.shape("sortChunksByIndex", `${sortedIdxs.length} indices for ${n} chunks`)
  const starts: Array<number> = []
  let total = 0
  for (const s of splitSizes) {
    if (!Number.isSafeInteger(s) || s < 0) throw TensorError.shape("sortChunksByIndex", `chunk size ${s} is not an integer >= 0`)
    starts.push(total)
    total += s
  }
  const seen = new Uint8Array(n)
  const out = new Int32Array(total)
  const rows = iota(total)
  let j = 0
  for (const c of sortedIdxs) {
    if (!Number.isInteger(c) || c < 0 || c >= n || seen[c] === 1) {
      throw TensorError.shape("sortChunksByIndex", `sortedIdxs [${sortedIdxs.join(", ")}] is not a permutation of 0..${n - 1}`)
    }
    seen[c] = 1
    const start = starts[c] as number
    const size = splitSizes[c] as number
    out.set(rows.subarray(start, start + size), j)
    j += size
  }
  return out
}

let iotaCache = new Int32Array(0)

/** 0, 1, ..., n - 1 (a view of a shared array: never write it). */
const iota = (n: number): Int32Array => {
  if (iotaCache.length < n) {
    iotaCache = new Int32Array(Math.max(n, 2 * iotaCache.length))
    for (let i = 0; i < iotaCache.length; i++) iotaCache[i] = i
  }
  return iotaCache.subarray(0, n)
}

/**
 * Whether a chunk order leaves every row where it is (every chunk in place, or the chunks out
 * of place all empty).
 */
const isIdentityOrder = (splitSizes: ReadonlyArray<number>, sortedIdxs: ReadonlyArray<number>): boolean => {
  // The rows stay in place exactly when the non-empty chunks come in increasing order.
  let last = -1
  for (const c of sortedIdxs) {
    if ((splitSizes[c] as number) === 0) continue
    if (c < last) return false
    last = c
  }
  return true
}

/**
 * Reorders consecutive chunks of rows (and the probs with them): output chunk i is input
 * chunk sortedIdxs[i]. Backward is the inverse reordering (a gather's scatter-add).
 * @category combinators
 */
export const sortChunksByIndex = (
  input: Tensor.Tensor,
  splitSizes: ReadonlyArray<number>,
  sortedIdxs: ReadonlyArray<number>,
  probs?: Tensor.Tensor,
): { readonly output: Tensor.Tensor; readonly probs: Tensor.Tensor | undefined } => {
  const index = chunkIndex(splitSizes, sortedIdxs)
  if (input.rank < 1 || input.shape[0] !== index.length) {
    throw TensorError.shape("sortChunksByIndex", `input ${TensorError.formatShape(input.shape)} does not have the ${index.length} rows of the chunks`)
  }
  if (probs !== undefined && probs.shape[0] !== index.length) {
    throw TensorError.shape("sortChunksByIndex", `probs ${TensorError.formatShape(probs.shape)} do not have ${index.length} rows`)
  }
  const k = isIdentityOrder(splitSizes, sortedIdxs) ? nativeFor(input, probs) : undefined
  if (k !== undefined) {
    // Nothing moves: the same storage forward, the gather's gradient backward.
    return { output: PermuteKernels.inPlace(k, input, index), probs: probs === undefined ? undefined : PermuteKernels.inPlace(k, probs, index) }
  }
  return { output: gatherRows(input, index), probs: probs === undefined ? undefined : gatherRows(probs, index) }
}
