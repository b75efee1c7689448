/**
 * ExpertOverload: how much more than its share the busiest expert-parallel rank routed, per MoE
 * layer of a step (Megatron-Core's overload factor). For each EP group and micro-batch the
 * factor is the rows the busiest rank's local experts got over the group's mean rows per rank
 * (RoutingStats.imbalance of the ranks' rows): 1 when every rank got its share, EP when one rank
 * got every row; 1 for a group that routed nothing, and always 1 at EP 1. A layer's `mean` and
 * `max` are over its EP groups and micro-batches (Megatron's avg_overload_factor and
 * max_overload_factor, there also over the layers): the mean drives the step's time, the max the
 * buffers a rank needs. Rows are those the dispatcher gave the experts: after capacity dropping,
 * and with padding where tokens are padded to capacity. ETP ranks of one expert share its rows,
 * so each EP group of an ETP index reads the same.
 */
import * as RoutingStats from "../moe/RoutingStats.js"
import type * as StepReport from "./StepReport.js"

/**
 * One MoE layer's overload factor in a step.
 * @category models
 */
export interface LayerOverload {
  readonly layer: number
  /** Over the layer's EP groups and micro-batches: the mean factor and the largest. */
  readonly mean: number
  readonly max: number
}

/**
 * The overload factor of every MoE layer the reports ran, in layer order. `epGroups` are the
 * ranks of each EP group (Families.family(config, "ep")); `reports[r]` is rank r's.
 * @category constructors
 */
export const ofStep = (reports: ReadonlyArray<Pick<StepReport.StepReport, "rankRows">>, epGroups: ReadonlyArray<ReadonlyArray<number>>): Array<LayerOverload> => {
  // Per layer: every (EP group, micro-batch)'s factor.
  const factors = new Map<number, Array<number>>()
  for (const group of epGroups) {
    const byLayer = new Map<number, Array<ReadonlyArray<number>>>()
    for (const rank of group) for (const e of reports[rank]?.rankRows ?? []) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), e.rows])
    for (const [layer, ranks] of byLayer) {
      const microBatches = Math.max(...ranks.map((r) => r.length))
      const got = factors.get(layer) ?? []
      for (let m = 0; m < microBatches; m++) got.push(RoutingStats.imbalance(ranks.map((r) => r[m] ?? 0)))
      factors.set(layer, got)
    }
  }
  return [...factors].sort((a, b) => a[0] - b[0]).map(([layer, f]) => ({ layer, mean: f.reduce((a, b) => a + b, 0) / f.length, max: Math.max(...f) }))
}
