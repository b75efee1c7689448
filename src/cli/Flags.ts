/**
 * Flags: a small, strict command-line flag parser.
 *
 * Strict on purpose: an unknown flag, a missing value, a repeated flag or a value that is not a
 * positive integer is a ConfigError naming the flag, so `pleat` can exit with status 2 and one
 * clear line instead of running with a silently ignored or misread setting.
 */
import * as ConfigError from "../mapping/ConfigError.js"

/**
 * The kind of value a flag takes.
 * @category models
 */
export type FlagKind = "int" | "string" | "boolean"

/**
 * A flag the command accepts.
 * @category models
 */
export interface FlagSpec {
  readonly kind: FlagKind
  readonly help: string
  /** The placeholder shown in usage (`N`, `FILE`). */
  readonly placeholder?: string
}

/**
 * Parsed flags: integers as numbers, strings as strings, booleans as true.
 * @category models
 */
export type ParsedFlags = Readonly<Record<string, number | string | boolean>>

const integerText = /^\+?[0-9]+$/

/**
 * Parses `argv` against `specs`; `--name value` and `--name=value` both work.
 * Throws a ConfigError for anything it cannot take exactly.
 * @category constructors
 */
export const parse = (argv: ReadonlyArray<string>, specs: Readonly<Record<string, FlagSpec>>): ParsedFlags => {
  const out: Record<string, number | string | boolean> = {}
  const known = Object.keys(specs).map((n) => `--${n}`).join(", ")
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (!arg.startsWith("--") || arg === "--") {
      throw ConfigError.make("arguments", arg, "is not a flag", `pass only flags (${known})`)
    }
    const eq = arg.indexOf("=")
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2)
    const spec = specs[name]
    if (spec === undefined) {
      throw ConfigError.make("arguments", `--${name}`, "is not a known flag", `use one of ${known}`)
    }
    if (name in out) {
      throw ConfigError.make(name, `--${name}`, "is given twice", `pass --${name} once`)
    }
    if (spec.kind === "boolean") {
      if (eq >= 0) throw ConfigError.make(name, arg, "takes no value", `write --${name} alone`)
      out[name] = true
      continue
    }
    let value: string
    if (eq >= 0) {
      value = arg.slice(eq + 1)
    } else {
      const next = argv[i + 1]
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw ConfigError.make(name, undefined, "needs a value", `write --${name} ${spec.placeholder ?? "VALUE"}`)
      }
      value = next
      i++
    }
    if (spec.kind === "int") {
      const n = integerText.test(value) ? Number(value) : Number.NaN
      if (!Number.isSafeInteger(n) || n < 1) {
        throw ConfigError.make(name, value, "is not a positive integer", `write --${name} N with N = 1, 2, 3, ...`)
      }
      out[name] = n
    } else {
      if (value === "") throw ConfigError.make(name, value, "is empty", `write --${name} ${spec.placeholder ?? "VALUE"}`)
      out[name] = value
    }
  }
  return out
}

/**
 * A usage block listing the flags, one per line.
 * @category mapping
 */
export const usage = (specs: Readonly<Record<string, FlagSpec>>): string =>
  Object.entries(specs)
    .map(([name, spec]) => {
      const head = spec.kind === "boolean" ? `--${name}` : `--${name} ${spec.placeholder ?? "VALUE"}`
      return `  ${head.padEnd(18)} ${spec.help}`
    })
    .join("\n")

/**
 * An integer flag, or undefined when absent.
 * @category mapping
 */
export const int = (flags: ParsedFlags, name: string): number | undefined => {
  const v = flags[name]
  return typeof v === "number" ? v : undefined
}

/**
 * A string flag, or undefined when absent.
 * @category mapping
 */
export const string = (flags: ParsedFlags, name: string): string | undefined => {
  const v = flags[name]
  return typeof v === "string" ? v : undefined
}

/**
 * Whether a boolean flag was given.
 * @category mapping
 */
export const bool = (flags: ParsedFlags, name: string): boolean => flags[name] === true
