/**
 * pleat/mapping: pure rank-group math of MoE Parallel Folding (no I/O, no services).
 */
export * as Axis from "./Axis.js"
export * as Divisors from "./Divisors.js"
export * as Families from "./Families.js"
export * as InstanceSlices from "./InstanceSlices.js"
export * as Folding from "./Folding.js"
export * as Order from "./Order.js"
export * as ParallelConfig from "./ParallelConfig.js"
export * as RankGrid from "./RankGrid.js"
