/**
 * JobError: a job failed because one rank failed; names the rank (and the step, when the driver
 * knows it) and carries its cause.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"

/**
 * The first rank failure of a job (the other ranks were interrupted).
 * @category errors
 */
export class RankFailed extends Data.TaggedError("RankFailed")<{
  readonly rank: number
  readonly cause: Cause.Cause<unknown>
  /** The step the rank was running, counted from 1, when the job's driver knows it. */
  readonly step?: number | undefined
}> {
  override get message(): string {
    return `rank ${this.rank} failed${this.step === undefined ? "" : ` at step ${this.step}`}: ${describe(this.cause)}`
  }
}

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (error instanceof Error) return error.message
  // Some failures are objects without a string form (no prototype, or a throwing toString).
  try {
    return String(error)
  } catch {
    const message = typeof error === "object" && error !== null && "message" in error ? (error as { readonly message: unknown }).message : undefined
    return typeof message === "string" ? message : Object.prototype.toString.call(error)
  }
}
