/**
 * ConfigError: the user-facing error of a configuration that cannot work.
 *
 * Every check in pleat that rejects user input raises this one class, so that the command line,
 * scripts and tests can all print the same sentence: which field, which value, why, and the fix.
 * It is a plain tagged error (no Effect services), so the pure mapping code can return it.
 * It lives in src/errors, the lowest layer, so that every layer (mapping up to cli) can raise it.
 */
import * as Data from "effect/Data"

/**
 * A configuration value that cannot work, with the field it belongs to and how to fix it.
 * @category errors
 */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  /** The field as the user wrote it (`world`, `tp`, `order`, ...). */
  readonly field: string
  /** The offending value, as given. */
  readonly value: unknown
  /** Why the value cannot work. */
  readonly reason: string
  /** What to change so that it works. */
  readonly fix: string
}> {
  override get message(): string {
    const value = this.value === undefined ? "(not given)" : formatValue(this.value)
    return `${this.field}: ${value} ${this.reason}; fix: ${this.fix}`
  }
}

/**
 * Builds a ConfigError (a shorthand that reads well at the many call sites).
 * @category constructors
 */
export const make = (field: string, value: unknown, reason: string, fix: string): ConfigError => new ConfigError({ field, value, reason, fix })

/**
 * What a ConfigError says, as plain data (it crosses threads and processes inside other errors).
 * @category models
 */
export interface Fields {
  readonly field: string
  readonly value: unknown
  readonly reason: string
  readonly fix: string
}

/**
 * The fields of `e`, its value as text unless it is a primitive (so the fields always clone).
 * @category mapping
 */
export const fieldsOf = (e: ConfigError): Fields => ({
  field: e.field,
  value: e.value === null || typeof e.value !== "object" ? e.value : String(e.value),
  reason: e.reason,
  fix: e.fix,
})

/**
 * The ConfigError of `fields`.
 * @category constructors
 */
export const fromFields = (fields: Fields): ConfigError => make(fields.field, fields.value, fields.reason, fields.fix)

/**
 * Whether a value is a ConfigError.
 * @category guards
 */
export const isConfigError = (u: unknown): u is ConfigError => u instanceof ConfigError

const formatValue = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))
