/**
 * pleat/moe: the router and its options (Sinkhorn routing, quantile balancing and hash routing among them),
 * dropping and capacity, permutation, the dispatchers (all-to-all, allgather), the experts and
 * the whole MoE layer (LatentMoE projections included).
 */
export * as AllGatherDispatcher from "./AllGatherDispatcher.js"
export * as AllToAllDispatcher from "./AllToAllDispatcher.js"
export * as AuxLoss from "./AuxLoss.js"
export * as AuxLossSpec from "./AuxLossSpec.js"
export * as Capacity from "./Capacity.js"
export * as DispatchPlan from "./DispatchPlan.js"
export * as Dispatcher from "./Dispatcher.js"
export * as Dropping from "./Dropping.js"
export * as ExpertBias from "./ExpertBias.js"
export * as Experts from "./Experts.js"
export * as HashRouting from "./HashRouting.js"
export * as LatentProjection from "./LatentProjection.js"
export * as MoeLayer from "./MoeLayer.js"
export * as MoeRunState from "./MoeRunState.js"
export * as MoeSettings from "./MoeSettings.js"
export * as Permute from "./Permute.js"
export * as QuantileBalancing from "./QuantileBalancing.js"
export * as Router from "./Router.js"
export * as RoutingMap from "./RoutingMap.js"
export * as ScoreFunctions from "./ScoreFunctions.js"
export * as Sinkhorn from "./Sinkhorn.js"
