/**
 * JobError: a job failed because one rank failed; names the rank and carries its cause.
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
}> {
  override get message(): string {
    return `rank ${this.rank} failed: ${describe(this.cause)}`
  }
}

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}
