/**
 * BadInput: every problem found in what the user typed (flags, a config file, a checkpoint to
 * resume), reported at once.
 *
 * Each problem is a ConfigError naming the field as the user wrote it (`--kv-heads`, or a key
 * of the config file). The command line prints them as one line, `; `-separated, and exits 2,
 * so a user fixes every flag in one round instead of one per run.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as CommError from "../comm/CommError.js"
import * as ConfigError from "../errors/ConfigError.js"

/**
 * One or more problems with the user's input.
 * @category errors
 */
export class BadInput extends Data.TaggedError("BadInput")<{
  readonly problems: ReadonlyArray<ConfigError.ConfigError>
}> {
  override get message(): string {
    return this.problems.map((p) => p.message).join("; ")
  }
}

/**
 * Throws the problems as one BadInput; does nothing when there are none.
 * @category constructors
 */
export const throwIfAny = (problems: ReadonlyArray<ConfigError.ConfigError>): void => {
  if (problems.length > 0) throw new BadInput({ problems })
}

/**
 * Whether a value is a BadInput.
 * @category guards
 */
const isBadInput = (u: unknown): u is BadInput => u instanceof BadInput

/**
 * The user-facing error inside `u`, if any: a BadInput or a ConfigError, itself or carried as
 * the cause of a wrapping error (a rank's failure wraps what the rank threw).
 * @category mapping
 */
export const find = (u: unknown, depth = 0): BadInput | ConfigError.ConfigError | undefined => {
  if (isBadInput(u) || ConfigError.isConfigError(u)) return u
  // A collective that a configuration error broke (a buffer over the machine's memory) carries it.
  if (u instanceof CommError.CommError && u.config !== undefined) return ConfigError.fromFields(u.config)
  if (depth > 8 || typeof u !== "object" || u === null) return undefined
  const inner = (u as { cause?: unknown }).cause
  if (inner === undefined) return undefined
  return find(Cause.isCause(inner) ? Cause.squash(inner) : inner, depth + 1)
}
