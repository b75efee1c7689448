/**
 * HeldOut: evaluation on held-out data as the job sees it (`--eval-data`): what a run evaluates on,
 * what each rank reports after an evaluation, and the driver's sum of the ranks' shares into one
 * loss per evaluation. The forward passes themselves are Evaluation's.
 */
import type * as TokenFile from "./TokenFile.js"

/**
 * What a run evaluates on: the held-out token file and how many global batches of it.
 * @category models
 */
export interface EvaluationSetup {
  readonly data: TokenFile.TokenFile
  readonly batches: number
}

/**
 * A rank's share of an evaluation: of the language model's loss, and of each multi-token
 * prediction depth's (empty without MTP layers).
 * @category models
 */
export interface EvalShare {
  readonly share: number
  readonly mtp: ReadonlyArray<number>
}

/**
 * What a rank reports after an evaluation: the steps done when it ran, and the rank's shares.
 * @category models
 */
export interface EvalEvent extends EvalShare {
  readonly evaluated: number
}

/**
 * One evaluation of the whole job: after `step` steps, the mean loss on the held-out data, and
 * each multi-token prediction depth's (empty without MTP layers; not part of `loss`).
 * @category models
 */
export interface EvalSummary {
  readonly step: number
  readonly loss: number
  readonly mtp: ReadonlyArray<number>
}

/**
 * Whether a rank's report is an evaluation's (EvalEvent).
 * @category guards
 */
export const isEvalEvent = (value: unknown): value is EvalEvent => typeof value === "object" && value !== null && "evaluated" in value

/**
 * Sums the ranks' shares of each evaluation (and of each MTP depth's loss); `publish` gets its summary once all `world` ranks have
 * reported it.
 * @category constructors
 */
export const collector = (world: number, publish: (summary: EvalSummary) => void) => {
  const arrived = new Map<number, { count: number; loss: number; mtp: ReadonlyArray<number> }>()
  return (event: EvalEvent): void => {
    const got = arrived.get(event.evaluated) ?? { count: 0, loss: 0, mtp: [] }
    // Ranks off the last stage have no MTP shares: their list is empty.
    const mtp = Array.from({ length: Math.max(got.mtp.length, event.mtp.length) }, (_, k) => (got.mtp[k] ?? 0) + (event.mtp[k] ?? 0))
    const next = { count: got.count + 1, loss: got.loss + event.share, mtp }
    if (next.count < world) {
      arrived.set(event.evaluated, next)
      return
    }
    arrived.delete(event.evaluated)
    publish({ step: event.evaluated, loss: next.loss, mtp: next.mtp })
  }
}
