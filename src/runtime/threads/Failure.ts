/**
 * Failure: a rank's Cause flattened in its worker and rebuilt on the main thread.
 *
 * A Cause (and an error class instance) loses its prototype in structured clone, so the
 * worker sends plain fields and the main thread rebuilds what the job reports: a CommError is
 * rebuilt as a real CommError (its message names reason, op, sequence number, group, rank and
 * the ranks diagnosed), a ConfigError as a real ConfigError (a rank that met input that cannot
 * run: the command exits 2 as it would on one thread), any other Error as an Error with the
 * same name, message, stack and cloneable fields, and other values as themselves when they
 * clone.
 */
import * as Cause from "effect/Cause"
import * as CommError from "../../comm/CommError.js"
import * as ConfigError from "../../errors/ConfigError.js"
import type { WireFailure, WireValue } from "../../comm/threads/Protocol.js"

const clones = (value: unknown): boolean => {
  try {
    structuredClone(value)
    return true
  } catch {
    return false
  }
}

/**
 * A value in cloneable form.
 * @category mapping
 */
export const flattenValue = (error: unknown): WireValue => {
  if (error instanceof CommError.CommError) {
    return { type: "comm", fields: CommError.fields(error) }
  }
  if (ConfigError.isConfigError(error)) {
    return { type: "config", field: error.field, value: clones(error.value) ? error.value : String(error.value), reason: error.reason, fix: error.fix }
  }
  if (error instanceof Error) {
    const props: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(error)) if (k !== "message" && k !== "stack" && clones(v)) props[k] = v
    return { type: "error", name: error.name, message: error.message, stack: error.stack, props }
  }
  return { type: "value", value: clones(error) ? error : String(error) }
}

/**
 * A cause in cloneable form: what failed (a typed error before a defect) and how.
 * @category mapping
 */
export const flatten = (cause: Cause.Cause<unknown>): WireFailure => {
  if (Cause.hasFails(cause)) return { kind: "fail", error: flattenValue(Cause.squash(cause)) }
  if (Cause.hasDies(cause)) return { kind: "die", error: flattenValue(Cause.squash(cause)) }
  return { kind: "interrupt", error: { type: "error", name: "Interrupted", message: "the rank's program was interrupted", stack: undefined, props: {} } }
}

/** The value again, as close to the original as cloning allows. */
const rebuildValue = (v: WireValue): unknown => {
  switch (v.type) {
    case "comm":
      return CommError.make(v.fields)
    case "config":
      return ConfigError.make(v.field, v.value, v.reason, v.fix)
    case "error": {
      const e = new Error(v.message)
      Object.assign(e, v.props)
      e.name = v.name
      if (v.stack !== undefined) e.stack = v.stack
      return e
    }
    case "value":
      return v.value
  }
}

/**
 * The cause again (an interrupted rank becomes a defect: the job did not interrupt it).
 * @category mapping
 */
export const rebuild = (f: WireFailure): Cause.Cause<unknown> => (f.kind === "fail" ? Cause.fail(rebuildValue(f.error)) : Cause.die(rebuildValue(f.error)))
