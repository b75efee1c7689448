/**
 * RoutingSites: a rank's routing replay and recording for one training step (ModelContext.RoutingSite).
 *
 * Replay reads the step's file (RoutingFiles.readStep; the driver checked every one before the
 * run) and gives each MoE layer's rows their experts by place. Recording keeps the experts the
 * router chose for each layer's rows (RoutingFiles.Entry, places counted from the step's first
 * token) for the rank's step report; the driver fills them into the step's file.
 */
import type * as ModelContext from "../model/ModelContext.js"
import * as RoutingFiles from "./RoutingFiles.js"
import type * as TrainSetup from "./TrainSetup.js"

/**
 * One step's site on one rank, and what it recorded (filled as the step's forwards run).
 * @category models
 */
export interface StepSite {
  readonly site: ModelContext.RoutingSite
  readonly recorded: Array<RoutingFiles.Entry> | undefined
}

/**
 * The site of step `k` (counting from 0), or undefined without replay or recording.
 * @category constructors
 */
export const forStep = (setup: TrainSetup.TrainSetup, k: number): StepSite | undefined => {
  const r = setup.routing
  if (r?.replay === undefined && r?.record === undefined) return undefined
  const manifest = RoutingFiles.manifestOf(setup.model, setup.batch.globalBatch)
  // Places in the data stream, counted from the step's first token.
  const offset = k * setup.batch.globalBatch * setup.model.seq
  const inStep = (places: Float64Array): Int32Array => Int32Array.from(places, (p) => p - offset)
  const replay = r.replay === undefined ? undefined : stepRead(setup, r.replay, k + 1, manifest)
  const recorded = r.record === undefined ? undefined : ([] as Array<RoutingFiles.Entry>)
  return {
    site: {
      replayed: replay === undefined ? undefined : (layer, places) => RoutingFiles.expertsAt(replay, layer, inStep(places)),
      record: recorded === undefined ? undefined : (layer, places, experts) => void recorded.push({ layer, places: inStep(places), experts: Int32Array.from(experts) }),
    },
    recorded,
  }
}

/**
 * The step files a run has read in this process, by its setup (the one object its ranks here
 * share), the newest few: the ranks of a process read each step's file once. Per run, so a file
 * rewritten between runs is read again.
 */
const read = new WeakMap<TrainSetup.TrainSetup, Map<number, RoutingFiles.StepRouting>>()
const readKept = 2

/** Step `step`'s routing from `dir`, read once for the run's ranks in this process (they reach a step together). */
const stepRead = (setup: TrainSetup.TrainSetup, dir: string, step: number, manifest: RoutingFiles.Manifest): RoutingFiles.StepRouting => {
  const steps = read.get(setup) ?? new Map<number, RoutingFiles.StepRouting>()
  read.set(setup, steps)
  const held = steps.get(step)
  if (held !== undefined) return held
  const routing = RoutingFiles.readStep(dir, step, manifest)
  steps.set(step, routing)
  if (steps.size > readKept) steps.delete(Math.min(...steps.keys()))
  return routing
}
