/**
 * Flags: a small, strict command-line flag parser.
 *
 * Strict on purpose: an unknown flag, a missing value, a repeated flag or an integer out of its
 * range (below its least value, 1 unless the flag says 0; above its largest, by default
 * Number.MAX_SAFE_INTEGER, the last integer a JavaScript number holds exactly, which the message
 * names) is a problem naming the flag as typed (`--kv-heads`), so `pleat` can exit
 * with status 2 and one clear line instead of running with a silently ignored or misread
 * setting. Every problem of the command line is collected before any is reported, so one run
 * names them all. `-h` is `--help` wherever a command has `--help`.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as BadInput from "./BadInput.js"

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
  /** The least value of an integer flag: 1 (the default) or 0. */
  readonly min?: 0 | 1
  /** The largest value of an integer flag (default Number.MAX_SAFE_INTEGER). */
  readonly max?: number
}

/**
 * Parsed flags: integers as numbers, strings as strings, booleans as true.
 * @category models
 */
export type ParsedFlags = Readonly<Record<string, number | string | boolean>>

/**
 * The flags that parsed and the problems of those that did not.
 * @category models
 */
export interface Collected {
  readonly flags: ParsedFlags
  readonly problems: ReadonlyArray<ConfigError.ConfigError>
  /** The name each flag was given by, where it was another name for it (`num-layers` for `layers`). */
  readonly typed: Readonly<Record<string, string>>
}

const integerText = /^\+?[0-9]+$/

/**
 * Why an integer value is out of range, and its fix; undefined when it is in range. Shared by
 * the flags and the config file so that both say the same thing about the same value.
 * @category mapping
 */
export const integerProblem = (
  value: unknown,
  range: { readonly min?: 0 | 1 | undefined; readonly max?: number | undefined },
  write: string,
): { readonly reason: string; readonly fix: string } | undefined => {
  const min = range.min ?? 1
  const max = range.max ?? Number.MAX_SAFE_INTEGER
  const n = typeof value === "number" ? value : typeof value === "string" && integerText.test(value) ? Number(value) : Number.NaN
  // Too large is said as such: an integer written with more digits than a number holds exactly.
  if ((Number.isInteger(n) || n === Number.POSITIVE_INFINITY) && n > max) return { reason: `is too large (the largest accepted is ${max})`, fix: `${write} ${max} or less` }
  if (Number.isSafeInteger(n) && n >= min) return undefined
  return min === 0 ? { reason: "is not a non-negative integer", fix: `${write} 0, 1, 2, ...` } : { reason: "is not a positive integer", fix: `${write} 1, 2, 3, ...` }
}

/** Levenshtein distance, for "did you mean". */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length] as number
}

/**
 * The known name closest to `name` when it is close enough to be a typo.
 * @category mapping
 */
export const closest = (name: string, known: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const k of known) {
    const d = distance(name, k)
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  return best
}

/**
 * Parses `argv` against `specs`, collecting every problem; `--name value` and `--name=value`
 * both work. `aliases` gives other names of flags (alias to the spec's name): a flag given by
 * one is kept under the spec's name, and its problems name it as typed.
 * @category constructors
 */
export const collect = (argv: ReadonlyArray<string>, specs: Readonly<Record<string, FlagSpec>>, aliases: Readonly<Record<string, string>> = {}): Collected => {
  const out: Record<string, number | string | boolean> = {}
  const typed: Record<string, string> = {}
  const problems: Array<ConfigError.ConfigError> = []
  const names = Object.keys(specs)
  const known = names.map((n) => `--${n}`).join(", ")
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] as string
    const arg = raw === "-h" && specs.help !== undefined ? "--help" : raw
    if (!arg.startsWith("--") || arg === "--") {
      problems.push(ConfigError.make("arguments", arg, "is not a flag", `pass only flags (${known})`))
      continue
    }
    const eq = arg.indexOf("=")
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2)
    const key = Object.hasOwn(aliases, name) ? (aliases[name] as string) : name
    const spec = Object.hasOwn(specs, key) ? specs[key] : undefined
    if (spec === undefined) {
      const near = closest(name, names)
      problems.push(ConfigError.make("arguments", `--${name}`, "is not a known flag", near === undefined ? `use one of ${known}` : `did you mean --${near}?`))
      // Its value, if any, is not a flag either; skip it so it is not reported twice.
      const next = argv[i + 1]
      if (eq < 0 && next !== undefined && !next.startsWith("-")) i++
      continue
    }
    if (key in out) {
      const before = typed[key] ?? key
      const reason = before === name ? "is given twice" : `is given twice (also as --${before})`
      problems.push(ConfigError.make("arguments", `--${name}`, reason, `pass --${name} once`))
      if (spec.kind !== "boolean" && eq < 0 && argv[i + 1] !== undefined) i++
      continue
    }
    if (key !== name) typed[key] = name
    else delete typed[key]
    if (spec.kind === "boolean") {
      if (eq >= 0) problems.push(ConfigError.make(`--${name}`, arg.slice(eq + 1), "takes no value", `write --${name} alone`))
      else out[key] = true
      continue
    }
    let value: string
    if (eq >= 0) {
      value = arg.slice(eq + 1)
    } else {
      const next = argv[i + 1]
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        problems.push(ConfigError.make(`--${name}`, undefined, "needs a value", `write --${name} ${spec.placeholder ?? "VALUE"}`))
        continue
      }
      value = next
      i++
    }
    if (spec.kind === "int") {
      const problem = integerProblem(value, spec, `write --${name}`)
      if (problem !== undefined) problems.push(ConfigError.make(`--${name}`, value, problem.reason, problem.fix))
      else out[key] = Number(value)
    } else if (value === "") {
      problems.push(ConfigError.make(`--${name}`, value, "is empty", `write --${name} ${spec.placeholder ?? "VALUE"}`))
    } else {
      out[key] = value
    }
  }
  return { flags: out, problems, typed }
}

/**
 * Parses `argv` against `specs`; throws a BadInput naming every flag it cannot take exactly.
 * @category constructors
 */
export const parse = (argv: ReadonlyArray<string>, specs: Readonly<Record<string, FlagSpec>>): ParsedFlags => {
  const { flags, problems } = collect(argv, specs)
  BadInput.throwIfAny(problems)
  return flags
}

/**
 * A usage block listing the flags, one per line.
 * @category mapping
 */
export const usage = (specs: Readonly<Record<string, FlagSpec>>): string =>
  Object.entries(specs)
    .map(([name, spec]) => {
      const head = name === "help" ? "-h, --help" : spec.kind === "boolean" ? `--${name}` : `--${name} ${spec.placeholder ?? "VALUE"}`
      return `  ${head.padEnd(22)} ${spec.help}`
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
