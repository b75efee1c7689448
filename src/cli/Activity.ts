/**
 * Activity: what a running command is doing now, in words, so that an interruption can say
 * what it interrupted (`at step 3 of 100; no checkpoint written`).
 *
 * A long command updates it as it goes; the process edge (RunMain) reads it when a signal
 * arrives. It is a service so that commands run the same in tests (a fresh cell per run) and
 * in the real process.
 */
import * as Context from "effect/Context"

/**
 * The activity cell.
 * @category models
 */
export interface ActivityShape {
  /** Replaces the description (a phrase that follows "interrupted by SIGINT "). */
  readonly set: (text: string) => void
  readonly describe: () => string
}

/**
 * The activity of the running command.
 * @category services
 */
export class Activity extends Context.Service<Activity, ActivityShape>()("pleat/cli/Activity") {}

/**
 * A fresh, empty activity cell.
 * @category constructors
 */
export const make = (): ActivityShape => {
  let now = ""
  return {
    set: (text) => {
      now = text
    },
    describe: () => now,
  }
}
