/**
 * Dropping: token dropping and padding to capacity, `apply_router_token_dropping` of the
 * reference (semantics.md 2.2.6, 6.5, 6.6, 6.7).
 *
 * Shape legend: T tokens, E experts, K topk, C capacity.
 *
 *   probs_TE, map [T, E] -> probs_TE, map [T, E] (after dropping / padding), C
 *
 * C = getCapacity(T * K, E, capacityFactor) on this rank's tokens. Per expert (column) a
 * capacity mask keeps min(C, T) tokens:
 *   - "probs":    the tokens with the largest probs of that column (routed or not: a column of
 *                 probs is 0 off the map);
 *   - "position": the tokens with the largest 0/1 map entries, i.e. the first C routed tokens
 *                 in token order, then (only matters for padding) the first unrouted ones.
 * "probs" ranks by the prob value alone, as the reference's top-k over the column does: with
 * a negative scalingFactor a routed token (prob < 0) ranks below the unrouted ones (prob 0).
 * Ties in either policy go to the LOWER token index (the reference leaves ties to an unsorted
 * top-k; 6.5 asks for a deterministic rule).
 *   - without padding: map = map AND mask; probs = probs * map;
 *   - padToCapacity:   map = mask, so every expert holds exactly min(C, T) rows: its kept
 *                      routed tokens plus "filler" tokens, chosen by the same ranking (for
 *                      "probs": the largest remaining probs, which are 0 for unrouted tokens,
 *                      so the lowest-index unrouted tokens; for "position": the lowest-index
 *                      unrouted tokens). Fillers get prob 0 (probs * map, and probs is 0 off
 *                      the routing map).
 * C > T (6.6): the reference marks every pair: without padding nothing is dropped; with
 * padding every expert gets all T tokens (T rows, not C, since only T tokens exist). That is
 * the behaviour here, stated rather than rejected.
 *
 * The probs keep their gradient: the new probs are probs * map with a constant 0/1 map
 * (`maskProbs`, which writes +0 off the map, so a negative prob (negative scaling factor)
 * that is dropped becomes 0, not -0).
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import * as Capacity from "./Capacity.js"
import * as RoutingMap from "./RoutingMap.js"

/**
 * Which tokens an expert over capacity keeps.
 * @category models
 */
export type DropPolicy = "probs" | "position"

/**
 * The drop policies, for validation and messages.
 * @category configuration
 */
export const dropPolicies: ReadonlyArray<DropPolicy> = ["probs", "position"]

/**
 * Options of token dropping.
 * @category models
 */
export interface DroppingOptions {
  readonly topk: number
  /** A number >= 0 (see Capacity.isDropless for null and negative factors). */
  readonly capacityFactor: number
  readonly dropPolicy: DropPolicy
  readonly padToCapacity: boolean
}

/**
 * The probs and map after dropping, and the capacity used.
 * @category models
 */
export interface Dropped {
  readonly probs: Tensor.Tensor
  readonly routingMap: RoutingMap.RoutingMap
  readonly capacity: number
}

/**
 * Throws a ConfigError when `policy` is not a drop policy.
 * @category guards
 */
const checkPolicy = (policy: string): void => {
  if (!(dropPolicies as ReadonlyArray<string>).includes(policy)) {
    throw ConfigError.make("dropPolicy", policy, "is not a drop policy", `use one of ${dropPolicies.join(", ")}`)
  }
}

/**
 * Per column of `values` [T * E], the min(capacity, T) tokens with the largest values, ties to
 * the lower token index.
 * @category mapping
 */
const capacityMask = (values: ArrayLike<number>, numTokens: number, numExperts: number, capacity: number): RoutingMap.RoutingMap => {
  if (values.length !== numTokens * numExperts) {
    throw TensorError.shape("capacityMask", `${values.length} values for T*E = ${numTokens}*${numExperts}`)
  }
  const keep = Math.min(capacity, numTokens)
  const mask = new Uint8Array(numTokens * numExperts)
  const order = new Array<number>(numTokens)
  for (let e = 0; e < numExperts; e++) {
    for (let t = 0; t < numTokens; t++) order[t] = t
    // Value descending, token ascending among equal values (-0 and +0 are equal).
    order.sort((a, b) => {
      const va = values[a * numExperts + e] as number
      const vb = values[b * numExperts + e] as number
      return va === vb ? a - b : vb > va ? 1 : -1
    })
    for (let i = 0; i < keep; i++) mask[(order[i] as number) * numExperts + e] = 1
  }
  return RoutingMap.make(numTokens, numExperts, mask)
}

/**
 * probs where the map is true, +0 elsewhere; the gradient passes where the map is true.
 * @category combinators
 */
const maskProbs = (probs: Tensor.Tensor, map: RoutingMap.RoutingMap): Tensor.Tensor => {
  if (probs.size !== map.mask.length) {
    throw TensorError.shape("maskProbs", `probs ${TensorError.formatShape(probs.shape)} do not match the map [${map.numTokens}, ${map.numExperts}]`)
  }
  const out = DType.allocate(probs.dtype, probs.size)
  for (let i = 0; i < out.length; i++) if (map.mask[i] === 1) out[i] = probs.readHost()[i] as number
  return Autograd.hostResult("maskProbs", [probs], out, probs.shape, (g) => {
    const dx = DType.allocate(g.dtype, g.size)
    for (let i = 0; i < dx.length; i++) if (map.mask[i] === 1) dx[i] = g.readHost()[i] as number
    return [Tensor.fromStorage(dx, probs.shape, { device: g.device })]
  })
}

/**
 * Drops (and optionally pads) routed tokens to the capacity of each expert.
 * @category combinators
 */
export const applyTokenDropping = (probs: Tensor.Tensor, routingMap: RoutingMap.RoutingMap, options: DroppingOptions): Dropped => {
  checkPolicy(options.dropPolicy)
  const t = routingMap.numTokens
  const e = routingMap.numExperts
  if (probs.rank !== 2 || probs.shape[0] !== t || probs.shape[1] !== e) {
    throw TensorError.shape("applyTokenDropping", `probs ${TensorError.formatShape(probs.shape)} do not match the map [${t}, ${e}]`)
  }
  const capacity = Capacity.routerCapacity(t, options.topk, e, options.capacityFactor)
  const values = options.dropPolicy === "probs" ? probs.readHost() : routingMap.mask
  const mask = capacityMask(values, t, e, capacity)
  const finalMap = options.padToCapacity ? mask : RoutingMap.and(routingMap, mask)
  const finalProbs = maskProbs(probs, finalMap)
  return { probs: finalProbs, routingMap: finalMap, capacity }
}
