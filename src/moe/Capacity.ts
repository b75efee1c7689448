/**
 * Capacity: how many rows each expert may take when tokens are dropped, `get_capacity` of the
 * reference (semantics.md 2.2.1, 2.2.6, 6.7).
 *
 * Shape legend: T tokens (this rank's, 6.7), E experts, K topk, C capacity (rows per expert).
 *
 *   C = ceil(numTokens / E * capacityFactor), raised to minCapacity when given;
 *   the router calls it with numTokens = T * K (`routerCapacity`).
 *
 * The arithmetic is the reference's, in the same order: (numTokens / E) * factor, then ceil,
 * in float64, so a case computes the same C as a float64 re-implementation would.
 *
 * A capacity factor is "set" when it is a number >= 0. Null means dropless, and so does a
 * negative factor: the reference's configuration silently turns a factor < 0 into None (2.8),
 * and `isDropless` says so. A factor of 0 is set: C = 0 and every routed token is dropped.
 */
import * as TensorError from "../tensor/TensorError.js"

/**
 * The capacity of `numTokens` routed rows over `numExperts` experts.
 * @category mapping
 */
export const getCapacity = (numTokens: number, numExperts: number, capacityFactor: number, minCapacity?: number): number => {
  if (!Number.isSafeInteger(numTokens) || numTokens < 0) throw TensorError.shape("getCapacity", `numTokens must be an integer >= 0, got ${numTokens}`)
  if (!Number.isSafeInteger(numExperts) || numExperts < 1) throw TensorError.shape("getCapacity", `numExperts must be an integer >= 1, got ${numExperts}`)
  if (!Number.isFinite(capacityFactor) || capacityFactor < 0) {
    throw TensorError.shape("getCapacity", `capacityFactor must be a finite number >= 0, got ${capacityFactor} (a negative factor means dropless: see isDropless)`)
  }
  const c = Math.ceil((numTokens / numExperts) * capacityFactor)
  return minCapacity !== undefined && minCapacity > c ? minCapacity : c
}

/**
 * The router's capacity (2.2.6): getCapacity(T * K, E, capacityFactor).
 * @category mapping
 */
export const routerCapacity = (numTokens: number, topk: number, numExperts: number, capacityFactor: number): number => getCapacity(numTokens * topk, numExperts, capacityFactor)

/**
 * Whether a capacity factor means "no dropping": null, undefined, or negative (2.8).
 * @category guards
 */
export const isDropless = (capacityFactor: number | null | undefined): capacityFactor is null | undefined =>
  capacityFactor === null || capacityFactor === undefined || capacityFactor < 0
