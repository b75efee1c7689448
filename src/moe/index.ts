/**
 * pleat/moe: the single-rank MoE core: routing, aux losses, capacity and dropping, permute /
 * unpermute and the dispatch plan, and the replay of one routing case (semantics.md section 2).
 */
export * as AuxLoss from "./AuxLoss.js"
export * as Capacity from "./Capacity.js"
export * as DispatchPlan from "./DispatchPlan.js"
export * as Dropping from "./Dropping.js"
export * as Permute from "./Permute.js"
export * as Replay from "./Replay.js"
export * as Router from "./Router.js"
export * as RoutingMap from "./RoutingMap.js"
