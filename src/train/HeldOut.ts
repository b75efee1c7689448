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
 * What a rank reports after an evaluation: the steps done when it ran, and the rank's share.
 * @category models
 */
export interface EvalEvent {
  readonly evaluated: number
  readonly share: number
}

/**
 * One evaluation of the whole job: after `step` steps, the mean loss on the held-out data.
 * @category models
 */
export interface EvalSummary {
  readonly step: number
  readonly loss: number
}

/**
 * Whether a rank's report is an evaluation's (EvalEvent).
 * @category guards
 */
export const isEvalEvent = (value: unknown): value is EvalEvent => typeof value === "object" && value !== null && "evaluated" in value

/**
 * Sums the ranks' shares of each evaluation; `publish` gets its summary once all `world` ranks have
 * reported it.
 * @category constructors
 */
export const collector = (world: number, publish: (summary: EvalSummary) => void) => {
  const arrived = new Map<number, { count: number; loss: number }>()
  return (event: EvalEvent): void => {
    const got = arrived.get(event.evaluated) ?? { count: 0, loss: 0 }
    const next = { count: got.count + 1, loss: got.loss + event.share }
    if (next.count < world) {
      arrived.set(event.evaluated, next)
      return
    }
    arrived.delete(event.evaluated)
    publish({ step: event.evaluated, loss: next.loss })
  }
}
