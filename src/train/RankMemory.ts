/**
 * RankMemory: what one rank's training state takes in bytes, measured from the storage it
 * allocated: its parameter shards, their gradient accumulators, its optimizer state (AdamW
 * moments; sharded by the distributed optimizer), and the peak of activations kept for the
 * backward: at any moment, the bytes that the tapes of the (micro-batch, chunk)s in flight hold
 * (Tape.savedBytes: every non-leaf tensor a recorded op keeps), maximised over the step. The
 * pipeline schedule decides how many micro-batches are in flight (1F1B keeps up to pp on the
 * first stage); recompute lowers what each keeps.
 */
import * as DType from "../tensor/DType.js"
import type * as RankParams from "./RankParams.js"

/**
 * A rank's memory, in bytes.
 * @category models
 */
export interface RankMemory {
  readonly parameterBytes: number
  readonly gradientBytes: number
  readonly optimizerStateBytes: number
  /**
   * The most bytes the tapes kept for backward passes at once, with the rows deferred
   * weight-gradient products held meanwhile (GradAccumulator.heldBytes: from a micro-batch's
   * backward to the step's end; not the copy of them made when they run).
   */
  readonly peakActivationBytes: number
}

/** The bytes of a rank's parameter shards and of their gradient accumulators. */
const ofParams = (params: ReadonlyMap<string, RankParams.Held>): { readonly parameterBytes: number; readonly gradientBytes: number } => {
  let parameterBytes = 0
  let gradientBytes = 0
  for (const held of params.values()) {
    parameterBytes += held.value.size * DType.bytesPer(held.value.dtype)
    gradientBytes += held.grad.byteLength
  }
  return { parameterBytes, gradientBytes }
}

/**
 * The memory part of a step's report: the shards' bytes, then the optimizer's and the activation peak.
 * @category mapping
 */
export const report = (params: ReadonlyMap<string, RankParams.Held>, optimizerStateBytes: number, peakActivationBytes: number) => {
  const held = ofParams(params)
  return { parameterBytes: held.parameterBytes, gradientBytes: held.gradientBytes, optimizerStateBytes, peakActivationBytes }
}

/**
 * Live activation bytes over a step: `keep` when a forward's tape is done recording, `release`
 * when its backward has run; `peak` is the most held at once.
 * @category constructors
 */
export const activationMeter = (held: () => number = () => 0) => {
  let live = 0
  let peak = 0
  return {
    keep: (bytes: number) => {
      live += bytes
      peak = Math.max(peak, live + held())
    },
    release: (bytes: number) => {
      live -= bytes
      peak = Math.max(peak, live + held())
    },
    get peak() {
      return peak
    },
  }
}
