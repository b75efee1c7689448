/**
 * PermuteKernels: Permute's float32 path on the native dispatch kernels (src/native/CpuDispatch.ts),
 * as autograd ops. Each op is one pass over the rows it moves and gives the same bits as the
 * composition of tensor ops it replaces (Permute.ts keeps that composition as the fallback and
 * the specification; properties/moe/PermuteNative.prop.ts compares the two):
 *
 *   order        counting sort of the mask: the rows expert-major, token-ascending, and the counts
 *   gather       out[j] = src[index[j]]                      (gatherRows; backward: combine)
 *   combine      out[t] = 0 + sum over j of t, increasing j, of w[j] * rows[j]
 *                                                            (mul by the weight column, then
 *                                                            scatterAddRows; backward: gather,
 *                                                            w[j] * g[t_j] and dot(g[t_j], rows[j]))
 *   pairs        probs[t_j, e_j] of every row                (gatherRows on the flat probs)
 *   withColumn   [N, H + 1]: the rows and their prob as the last column (gather, pairs, concat)
 *   sortSplit    rows of [R, H + 1] in a chunk order, split into [R, H] and [R]
 *                                                            (sortChunksByIndex, then split)
 *   inPlace      the rows themselves, for a chunk order that moves nothing: no pass forward;
 *                backward 0 + g, the gather's scatter-add (gatherRows with 0, 1, ...)
 *
 * Callers check shapes and dtypes first (float32 storage everywhere, ranks as documented).
 */
import type { DispatchKernels } from "../native/CpuDispatch.js"
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as RoutingMap from "./RoutingMap.js"

const f32 = (t: Tensor.Tensor): Float32Array => t.data as Float32Array
const uninitialized = (size: number): Float32Array => DType.allocateUninitialized("float32", size) as Float32Array
const zeros = (size: number): Float32Array => DType.allocate("float32", size) as Float32Array

/**
 * The rows of the map in expert-major, token-ascending order, and the rows of each expert.
 * @category mapping
 */
export const order = (
  k: DispatchKernels,
  map: RoutingMap.RoutingMap,
): { readonly sortedIndices: Int32Array; readonly experts: Int32Array; readonly tokensPerExpert: Int32Array } => {
  const tokensPerExpert = new Int32Array(map.numExperts)
  const n = k.routingCounts(map.mask, map.numTokens, map.numExperts, tokensPerExpert)
  const sortedIndices = new Int32Array(n)
  const experts = new Int32Array(n)
  k.routingOrder(map.mask, map.numTokens, map.numExperts, sortedIndices, experts)
  return { sortedIndices, experts, tokensPerExpert }
}

/**
 * Rows of src [numRows, ...row] picked by index: [index.length, ...row].
 * @category combinators
 */
export const gather = (k: DispatchKernels, op: string, src: Tensor.Tensor, index: Int32Array, numRows: number): Tensor.Tensor => {
  const rowShape = src.shape.slice(1)
  const cols = Tensor.sizeOf(rowShape)
  const out = uninitialized(index.length * cols)
  k.permuteRows(f32(src), cols, index, out, cols, null, null, 0, null)
  return Autograd.result(op, [src], out, [index.length, ...rowShape], (g) => [combine(k, "scatterAddRows", g, index, undefined, numRows)])
}

/**
 * Rows [N, ...row] summed onto numTokens rows in increasing j, each times weights[j] [N] when
 * given (rank-2 rows then).
 * @category combinators
 */
export const combine = (k: DispatchKernels, op: string, rows: Tensor.Tensor, index: Int32Array, weights: Tensor.Tensor | undefined, numTokens: number): Tensor.Tensor => {
  const rowShape = rows.shape.slice(1)
  const cols = Tensor.sizeOf(rowShape)
  const out = uninitialized(numTokens * cols)
  k.combineRows(f32(rows), cols, index, weights === undefined ? null : f32(weights), null, numTokens, cols, out)
  const shape = [numTokens, ...rowShape]
  if (weights === undefined) return Autograd.result(op, [rows], out, shape, (g) => [gather(k, "gatherRows", g, index, numTokens)])
  return Autograd.result(op, [rows, weights], out, shape, (g) => {
    const gradRows = rows.requiresGrad ? uninitialized(rows.size) : null
    const gradWeights = weights.requiresGrad ? uninitialized(weights.size) : null
    k.combineBackward(f32(g), index, cols, f32(weights), f32(rows), gradRows, gradWeights)
    return [
      gradRows === null ? undefined : Tensor.fromStorage(gradRows, rows.shape, { device: g.device }),
      gradWeights === null ? undefined : Tensor.fromStorage(gradWeights, weights.shape, { device: g.device }),
    ]
  })
}

/** The gradient of probs [T, E] from values[j * stride] at the pairs (index[j], experts[j]). */
const pairGrad = (k: DispatchKernels, values: Float32Array, stride: number, index: Int32Array, experts: Int32Array, probs: Tensor.Tensor, device: Tensor.Tensor["device"]) => {
  const full = zeros(probs.size)
  k.scatterPairs(values, stride, index, experts, probs.shape[1] as number, full)
  return Tensor.fromStorage(full, probs.shape, { device })
}

/**
 * probs [T, E] at the pairs of the rows: [N], probs[index[j], experts[j]]; with the token rows
 * gathered in the same pass.
 * @category combinators
 */
export const gatherWithPairs = (
  k: DispatchKernels,
  tokens: Tensor.Tensor,
  probs: Tensor.Tensor,
  index: Int32Array,
  experts: Int32Array,
): { readonly rows: Tensor.Tensor; readonly pairs: Tensor.Tensor } => {
  const rowShape = tokens.shape.slice(1)
  const cols = Tensor.sizeOf(rowShape)
  const t = tokens.shape[0] as number
  const out = uninitialized(index.length * cols)
  const picked = uninitialized(index.length)
  k.permuteRows(f32(tokens), cols, index, out, cols, f32(probs), experts, probs.shape[1] as number, picked)
  const rows = Autograd.result("gatherRows", [tokens], out, [index.length, ...rowShape], (g) => [combine(k, "scatterAddRows", g, index, undefined, t)])
  const pairs = Autograd.result("gatherRows", [probs], picked, [index.length], (g) => [pairGrad(k, f32(g), 1, index, experts, probs, g.device)])
  return { rows, pairs }
}

/**
 * [N, H + 1]: token rows [T, H] of index and, as the last column, probs [T, E] at the pairs.
 * @category combinators
 */
export const withColumn = (k: DispatchKernels, tokens: Tensor.Tensor, probs: Tensor.Tensor, index: Int32Array, experts: Int32Array): Tensor.Tensor => {
  const [t, h] = tokens.shape as [number, number]
  const n = index.length
  const out = uninitialized(n * (h + 1))
  k.permuteRows(f32(tokens), h, index, out, h + 1, f32(probs), experts, probs.shape[1] as number, null)
  return Autograd.result("permuteWithProbs", [tokens, probs], out, [n, h + 1], (g) => {
    let gradTokens: Tensor.Tensor | undefined
    if (tokens.requiresGrad) {
      const full = uninitialized(t * h)
      k.combineRows(f32(g), h + 1, index, null, null, t, h, full)
      gradTokens = Tensor.fromStorage(full, tokens.shape, { device: g.device })
    }
    const gradProbs = probs.requiresGrad ? pairGrad(k, f32(g).subarray(h), h + 1, index, experts, probs, g.device) : undefined
    return [gradTokens, gradProbs]
  })
}

/**
 * Rows of src [R, H + 1] in the order of index (a permutation of the rows), split into the
 * rows [R, H] and their last column [R].
 * @category combinators
 */
export const sortSplit = (k: DispatchKernels, src: Tensor.Tensor, index: Int32Array): { readonly rows: Tensor.Tensor; readonly last: Tensor.Tensor } => {
  const [r, c] = src.shape as [number, number]
  const h = c - 1
  const out = uninitialized(r * h)
  const last = uninitialized(r)
  k.gatherSplitRows(f32(src), c, index, out, last)
  // Each piece places its gradient in a zero [R, H + 1] at the source rows, as split then the
  // gather's scatter-add do (the tape sums the two).
  const rows = Autograd.result("sortSplit", [src], out, [r, h], (g) => {
    const full = uninitialized(r * c)
    k.combineRows(f32(g), h, index, null, zeros(r), r, h, full)
    return [Tensor.fromStorage(full, src.shape, { device: g.device })]
  })
  const lastColumn = Autograd.result("sortSplit", [src], last, [r], (g) => {
    const full = zeros(r * c)
    k.scatterPairs(f32(g), 1, index, new Int32Array(r).fill(h), c, full)
    return [Tensor.fromStorage(full, src.shape, { device: g.device })]
  })
  return { rows, last: lastColumn }
}

/**
 * The rows of src [R, ...] unmoved (sortChunksByIndex with an order that moves nothing): the
 * same storage, and the gradient 0 + g as the gather's scatter-add gives it (a -0 becomes +0).
 * @category combinators
 */
export const inPlace = (k: DispatchKernels, src: Tensor.Tensor, identity: Int32Array): Tensor.Tensor =>
  Autograd.result("gatherRows", [src], src.data, src.shape, (g) => [combine(k, "scatterAddRows", g, identity, undefined, identity.length)])
