/**
 * StepCollector: the driver's side of a training step. Every rank reports each step as it
 * completes (TrainProgram.StepEvent); once every rank has reported a step, its summary (the
 * loss over all ranks, the MoE layers' balance and losses, each rank's times and memory) is
 * published with the reports it came from, in step order.
 */
import * as MoeStats from "../model/MoeStats.js"
import * as ExpertOverload from "./ExpertOverload.js"
import type * as StepReport from "./StepReport.js"
import type { StepSummary } from "./Train.js"
import type * as TrainProgram from "./TrainProgram.js"

/** The summary of one step from every rank's report. */
const summarize = (step: number, reports: ReadonlyArray<StepReport.StepReport>, tokens: number, seconds: number, epGroups: ReadonlyArray<ReadonlyArray<number>>): StepSummary => {
  const byLayer = new Map<number, Array<number>>()
  for (const r of reports) for (const e of r.expertRows) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), ...e.rows])
  const imbalance = [...byLayer]
    .sort((a, b) => a[0] - b[0])
    .map(([layer, rows]) => {
      const mean = rows.reduce((a, b) => a + b, 0) / Math.max(1, rows.length)
      return { layer, value: mean === 0 ? 1 : Math.max(...rows) / mean }
    })
  return {
    step,
    loss: reports.reduce((a, r) => a + r.loss, 0),
    gradNorm: reports[0]?.gradNorm ?? 0,
    lr: reports[0]?.lr ?? 0,
    tokens,
    seconds,
    imbalance,
    overload: ExpertOverload.ofStep(reports, epGroups),
    moe: MoeStats.combine(reports.map((r) => r.moeStats ?? [])),
    ranks: reports.map((r) => ({
      forwardMs: r.forwardMs,
      backwardMs: r.backwardMs,
      waitMs: r.waitMs,
      optimizerStateBytes: r.optimizerStateBytes,
      memory: r.memory,
      ...(r.hostDeviceBytes === undefined ? {} : { hostDeviceBytes: r.hostDeviceBytes }),
      ...(r.hostWaits === undefined ? {} : { hostWaits: r.hostWaits }),
      ...(r.deviceMemory === undefined ? {} : { deviceMemory: r.deviceMemory }),
    })),
  }
}

/**
 * Gathers the ranks' step events into summaries, in step order (a step is summarized once
 * every rank has reported it). `epGroups`: the ranks of each EP group (ExpertOverload).
 */
export const collector = (
  world: number,
  tokens: number,
  epGroups: ReadonlyArray<ReadonlyArray<number>>,
  publish: (summary: StepSummary, reports: ReadonlyArray<StepReport.StepReport>) => void,
  saved: (event: TrainProgram.SavedEvent) => void,
) => {
  const pending = new Map<number, Array<TrainProgram.StepEvent>>()
  let next: number | undefined
  return (rank: number, value: unknown): void => {
    if (typeof value === "object" && value !== null && "saved" in value) return saved(value as TrainProgram.SavedEvent)
    const event = value as TrainProgram.StepEvent
    next ??= event.step
    const got = pending.get(event.step) ?? []
    got[rank] = event
    pending.set(event.step, got)
    for (let ready = pending.get(next); ready !== undefined && ready.filter((e) => e !== undefined).length === world; ready = pending.get(next)) {
      pending.delete(next)
      const reports = ready.map((e) => e.report)
      publish(summarize(next, reports, tokens, Math.max(...ready.map((e) => e.seconds)), epGroups), reports)
      next++
    }
  }
}
