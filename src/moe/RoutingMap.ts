/**
 * RoutingMap: which (token, expert) pairs are routed, the boolean `routing_map [T, E]` of the
 * reference (semantics.md 2.0).
 *
 * Shape legend: T tokens, E experts, K topk.
 *
 *   mask_TE[t * E + e] = 1 when token t goes to expert e, else 0 (row-major, token-major).
 *
 * A map is a value: every function here returns a new map and never writes the mask of its
 * argument. (A typed array cannot be frozen, so this is a convention of the module: code outside
 * it reads `mask` and never writes it.)
 */
import { activeDispatchKernels } from "../native/CpuDispatch.js"
import * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import type * as DType from "../tensor/DType.js"

/**
 * A routing map of T tokens over E experts.
 * @category models
 */
export interface RoutingMap {
  readonly numTokens: number
  readonly numExperts: number
  /** [T * E], 1 where routed, 0 elsewhere. Never written after construction. */
  readonly mask: Uint8Array
}

const checkDims = (op: string, numTokens: number, numExperts: number): void => {
  if (!Number.isSafeInteger(numTokens) || numTokens < 0 || !Number.isSafeInteger(numExperts) || numExperts < 0) {
    throw TensorError.shape(op, `numTokens and numExperts must be integers >= 0, got ${numTokens} and ${numExperts}`)
  }
}

/**
 * A map over a copy of `mask` (any nonzero entry counts as routed); all false when omitted.
 * @category constructors
 */
export const make = (numTokens: number, numExperts: number, mask?: ArrayLike<number>): RoutingMap => {
  checkDims("RoutingMap.make", numTokens, numExperts)
  const out = new Uint8Array(numTokens * numExperts)
  if (mask !== undefined) {
    if (mask.length !== out.length) {
      throw TensorError.shape("RoutingMap.make", `mask has ${mask.length} entries, needs T*E = ${numTokens}*${numExperts} = ${out.length}`)
    }
    for (let i = 0; i < out.length; i++) out[i] = (mask[i] as number) !== 0 ? 1 : 0
  }
  return { numTokens, numExperts, mask: out }
}

/**
 * The map of top-k selections: `indices_TK` holds K expert indices per token, row-major.
 * @category constructors
 */
export const fromIndices = (numTokens: number, numExperts: number, indices: ArrayLike<number>, k: number): RoutingMap => {
  checkDims("RoutingMap.fromIndices", numTokens, numExperts)
  if (indices.length !== numTokens * k) {
    throw TensorError.shape("RoutingMap.fromIndices", `${indices.length} indices for T=${numTokens} tokens of K=${k}`)
  }
  const mask = new Uint8Array(numTokens * numExperts)
  for (let t = 0; t < numTokens; t++) {
    for (let j = 0; j < k; j++) {
      const e = indices[t * k + j] as number
      if (!Number.isInteger(e) || e < 0 || e >= numExperts) {
        throw TensorError.shape("RoutingMap.fromIndices", `expert ${e} of token ${t} is outside [0, ${numExperts})`)
      }
      mask[t * numExperts + e] = 1
    }
  }
  return { numTokens, numExperts, mask }
}

/**
 * A map from nested rows of 0/1 (or booleans): `rows[t][e]`.
 * @category constructors
 */
export const fromNested = (rows: ReadonlyArray<ReadonlyArray<number | boolean>>, numExperts?: number): RoutingMap => {
  const e = numExperts ?? rows[0]?.length ?? 0
  const flat: Array<number> = []
  rows.forEach((row, t) => {
    if (row.length !== e) throw TensorError.shape("RoutingMap.fromNested", `row ${t} has ${row.length} entries, expected ${e}`)
    for (const v of row) flat.push(v === true || v === 1 ? 1 : 0)
  })
  return make(rows.length, e, flat)
}

/**
 * Whether token t is routed to expert e.
 * @category guards
 */
export const has = (map: RoutingMap, t: number, e: number): boolean => map.mask[t * map.numExperts + e] === 1

/**
 * The number of routed pairs (N, the rows a permute produces).
 * @category mapping
 */
export const count = (map: RoutingMap): number => {
  const k = activeDispatchKernels()
  if (k !== undefined) return k.routingCounts(map.mask, map.numTokens, map.numExperts, new Int32Array(map.numExperts))
  let n = 0
  for (let i = 0; i < map.mask.length; i++) n += map.mask[i] as number
  return n
}

/**
 * Column sums: the tokens each expert receives, `[E]`.
 * @category mapping
 */
export const tokensPerExpert = (map: RoutingMap): Array<number> => {
  const k = activeDispatchKernels()
  if (k !== undefined) {
    // The same counts from the native scan of the mask (cuda/src/kernels/dispatch.h).
    const counts = new Int32Array(map.numExperts)
    k.routingCounts(map.mask, map.numTokens, map.numExperts, counts)
    return Array.from(counts)
  }
  const out = new Array<number>(map.numExperts).fill(0)
  for (let t = 0; t < map.numTokens; t++) {
    for (let e = 0; e < map.numExperts; e++) out[e] = (out[e] as number) + (map.mask[t * map.numExperts + e] as number)
  }
  return out
}

/**
 * Row sums: the experts each token is routed to, `[T]`.
 * @category mapping
 */
export const expertsPerToken = (map: RoutingMap): Array<number> => {
  const out = new Array<number>(map.numTokens).fill(0)
  for (let t = 0; t < map.numTokens; t++) {
    for (let e = 0; e < map.numExperts; e++) out[t] = (out[t] as number) + (map.mask[t * map.numExperts + e] as number)
  }
  return out
}

/**
 * The pairs routed in both maps.
 * @category combinators
 */
export const and = (a: RoutingMap, b: RoutingMap): RoutingMap => {
  if (a.numTokens !== b.numTokens || a.numExperts !== b.numExperts) {
    throw TensorError.shape("RoutingMap.and", `maps are [${a.numTokens}, ${a.numExperts}] and [${b.numTokens}, ${b.numExperts}]`)
  }
  const mask = new Uint8Array(a.mask.length)
  for (let i = 0; i < mask.length; i++) mask[i] = (a.mask[i] as number) & (b.mask[i] as number)
  return { numTokens: a.numTokens, numExperts: a.numExperts, mask }
}

/**
 * The map as a 0/1 tensor `[T, E]` (no tape: a constant).
 * @category mapping
 */
export const toTensor = (map: RoutingMap, dtype: DType.DType = "float64"): Tensor.Tensor => Tensor.fromArray(map.mask, [map.numTokens, map.numExperts], { dtype })

/**
 * The map as nested rows of 0/1: `[T][E]`.
 * @category mapping
 */
export const toNested = (map: RoutingMap): Array<Array<number>> => {
  const rows: Array<Array<number>> = []
  for (let t = 0; t < map.numTokens; t++) rows.push(Array.from(map.mask.subarray(t * map.numExperts, (t + 1) * map.numExperts)))
  return rows
}
