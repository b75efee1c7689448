/**
 * SettingKinds: the kinds of setting a run configuration holds (RunConfig's table), each a
 * constructor of one entry: its Schema (with the bounds it checks), its default when it has one,
 * the placeholder and help of its flag. Counts are positive integers up to the last one a
 * JavaScript number holds exactly, seeds 32-bit, texts non-empty, reals finite, choices one of
 * their literals; the optional kinds have no default.
 */
import * as Schema from "effect/Schema"

/** The largest count a setting takes: the last integer a JavaScript number holds exactly. */
const maxCount = Number.MAX_SAFE_INTEGER
/** Seeds are 32-bit (the data and weight generators mix them as 32-bit words): larger ones would repeat smaller ones. */
export const maxSeed = 2 ** 32 - 1

export const PositiveInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(maxCount))
const WholeInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(maxCount))
const SeedInt = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(maxSeed))
const NonEmpty = Schema.String.check(Schema.isMinLength(1))
const Real = Schema.Number.check(Schema.isFinite())

export const count = (help: string, fallback: number) => ({
  kind: "count" as const,
  schema: PositiveInt,
  min: 1 as const,
  max: maxCount,
  default: fallback,
  placeholder: "N",
  help,
})
export const whole = (help: string, fallback: number) => ({
  kind: "count" as const,
  schema: WholeInt,
  min: 0 as const,
  max: maxCount,
  default: fallback,
  placeholder: "N",
  help,
})
export const optionalCount = (help: string, placeholder = "N") => ({
  kind: "count" as const,
  schema: Schema.optionalKey(PositiveInt),
  min: 1 as const,
  max: maxCount,
  placeholder,
  help,
})
export const optionalWhole = (help: string, placeholder = "N") => ({
  kind: "count" as const,
  schema: Schema.optionalKey(WholeInt),
  min: 0 as const,
  max: maxCount,
  placeholder,
  help,
})
export const seed = (help: string, fallback: number) => ({ kind: "count" as const, schema: SeedInt, min: 0 as const, max: maxSeed, default: fallback, placeholder: "N", help })
export const text = (help: string, fallback: string, placeholder: string) => ({ kind: "text" as const, schema: NonEmpty, default: fallback, placeholder, help })
export const optionalText = (help: string, placeholder: string) => ({ kind: "text" as const, schema: Schema.optionalKey(NonEmpty), placeholder, help })
export const real = (help: string, fallback: number) => ({ kind: "real" as const, schema: Real, default: fallback, placeholder: "F", help })
export const optionalReal = (help: string) => ({ kind: "real" as const, schema: Schema.optionalKey(Real), placeholder: "F", help })
export const flag = (help: string) => ({ kind: "flag" as const, schema: Schema.Boolean, default: false, placeholder: "", help })
export const choice = <const L extends readonly [string, ...Array<string>]>(options: L, fallback: L[number], help: string, placeholder: string) => ({
  kind: "choice" as const,
  options,
  schema: Schema.Literals(options),
  default: fallback,
  placeholder,
  help: `${help}: ${options.join(" | ")}`,
})
export const optionalChoice = <const L extends readonly [string, ...Array<string>]>(options: L, help: string, placeholder: string) => ({
  kind: "choice" as const,
  options,
  schema: Schema.optionalKey(Schema.Literals(options)),
  placeholder,
  help: `${help}: ${options.join(" | ")}`,
})
