/**
 * Fault: TEST-ONLY fault injection into a training rank; never set it for a real run.
 *
 * PLEAT_FAULT=KIND@RANK:STEP (several joined by commas) makes rank RANK misbehave during step
 * STEP (counted from 1, as the CLI and the checkpoint directories count steps), after the
 * step's pipeline and model collectives and before its gradient synchronisation completes
 * (the distributed optimizer may have issued a chunk's reduce-scatters already):
 *   throw  the rank throws an error (a rank that fails mid-step)
 *   nan    the rank writes a NaN into its first gradient (a non-finite gradient)
 *   loss   the rank's loss share becomes NaN (a non-finite loss)
 *   kill   the rank's worker thread exits at once (threads backend only: on the local backend
 *          there is no thread to kill, and the rank fails saying so)
 * The driver reads the variable when a run starts (`fromEnvironment`) and hands the faults to
 * every rank with the run's args, so pooled worker threads started earlier obey it too. The tests of properties/train/Faults.prop.ts and
 * properties/cli/TrainFaults.test.ts are its only users.
 */
import { isMainThread } from "node:worker_threads"

/**
 * What an injected fault does.
 * @category models
 */
export type Kind = "throw" | "nan" | "loss" | "kill"

/**
 * One injected fault.
 * @category models
 */
export interface Fault {
  readonly kind: Kind
  readonly rank: number
  /** The step it fires in, counted from 1. */
  readonly step: number
}

const kinds: ReadonlyArray<string> = ["throw", "nan", "loss", "kill"]

/**
 * The faults a PLEAT_FAULT value asks for; a malformed entry throws (a test's mistake).
 * @category constructors
 */
export const parse = (text: string | undefined): Array<Fault> =>
  (text ?? "")
    .split(",")
    .filter((entry) => entry.trim() !== "")
    .map((entry) => {
      const m = /^\s*(\w+)@(\d+):(\d+)\s*$/.exec(entry)
      if (m === null || !kinds.includes(m[1] as string)) throw new Error(`PLEAT_FAULT: ${entry} is not KIND@RANK:STEP with KIND one of ${kinds.join(", ")}`)
      return { kind: m[1] as Kind, rank: Number(m[2]), step: Number(m[3]) }
    })

/**
 * The faults the environment asks for now (none in a real run).
 * @category constructors
 */
export const fromEnvironment = (): Array<Fault> => parse(process.env.PLEAT_FAULT)

/**
 * The fault rank `rank` is to suffer in step `step` (from 1), if any.
 * @category combinators
 */
export const at = (faults: ReadonlyArray<Fault>, rank: number, step: number): Kind | undefined => faults.find((f) => f.rank === rank && f.step === step)?.kind

/** The cause an injected fault names. */
const named = (kind: Kind) => `injected fault (PLEAT_FAULT ${kind})`

/**
 * Acts out `kind` on a rank holding `grads`: throws, exits the worker, or spoils a gradient;
 * returns the loss share to use (NaN for "loss").
 * @category combinators
 */
export const inflict = (kind: Kind, grads: ReadonlyArray<Float32Array | Float64Array>, lossShare: number): number => {
  switch (kind) {
    case "throw":
      throw new Error(`${named(kind)}: the rank threw mid-step`)
    case "kill":
      if (isMainThread) throw new Error(`${named(kind)}: the local backend has no worker thread to kill`)
      // Ends this worker thread only, as a crash would: no reply, no cleanup.
      return process.exit(70)
    case "nan": {
      const first = grads.find((g) => g.length > 0)
      if (first !== undefined) first[0] = Number.NaN
      return lossShare
    }
    case "loss":
      return Number.NaN
  }
}
