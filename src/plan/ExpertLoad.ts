/**
 * ExpertLoad: how unevenly a recorded routing (RoutingFiles, `pleat train --routing-record`) loads
 * the expert-parallel ranks of each EP size, for the planner. Under EP size ep, rank r holds
 * experts [r E / ep, (r + 1) E / ep) (Megatron-Core's and pleat's placement), so its tokens in a
 * layer are those experts' counts summed; the layer waits for its busiest rank. The factor of ep
 * is the mean over the recording's steps and MoE layers of (the busiest rank's tokens / the mean
 * rank's): 1 where the routing is balanced over the ranks, and always 1 for ep = 1 (one rank
 * holds every expert). The planner scales the routed experts' compute, all-to-all and ETP traffic
 * and activations of a mapping by its ep's factor (StepTime, MemoryModel) instead of assuming
 * balance.
 */
import * as RoutingStats from "../moe/RoutingStats.js"

/**
 * A recording's tokens per expert: [step][MoE layer][expert].
 * @category models
 */
export type Counts = ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>>

/**
 * The busiest EP rank's tokens over the mean rank's, averaged over the steps and layers (1 for a
 * layer that routed nothing). `ep` must divide the experts.
 * @category mapping
 */
export const factor = (counts: Counts, ep: number): number => {
  let sum = 0
  let layers = 0
  for (const step of counts) {
    for (const perExpert of step) {
      sum += RoutingStats.imbalance(RoutingStats.rankLoads(perExpert, ep))
      layers++
    }
  }
  return layers === 0 ? 1 : sum / layers
}

/**
 * The factor of each EP size, computed once per size.
 * @category constructors
 */
export const of = (counts: Counts): ((ep: number) => number) => {
  const known = new Map<number, number>()
  return (ep) => {
    const held = known.get(ep)
    if (held !== undefined) return held
    const value = factor(counts, ep)
    known.set(ep, value)
    return value
  }
}
