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
  const replay = r.replay === undefined ? undefined : RoutingFiles.readStep(r.replay, k + 1, manifest)
  const recorded = r.record === undefined ? undefined : ([] as Array<RoutingFiles.Entry>)
  return {
    site: {
      replayed: replay === undefined ? undefined : (layer, places) => RoutingFiles.expertsAt(replay, layer, inStep(places)),
      record: recorded === undefined ? undefined : (layer, places, experts) => void recorded.push({ layer, places: inStep(places), experts: Int32Array.from(experts) }),
    },
    recorded,
  }
}
