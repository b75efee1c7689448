/**
 * DataRange: `--data-range START:END` and `--eval-data-range START:END`, the ids of a token file a
 * run reads (TokenFile.TokenRange): what Megatron-LM's `--split` makes of one dataset's documents
 * (MegatronArgs), or a user's own cut of a file. Whether the range fits the file is TokenFile's
 * check; here, its form.
 */
import * as ConfigError from "../errors/ConfigError.js"
import type * as TokenFile from "../train/TokenFile.js"

/**
 * The range `text` gives for `field`, or undefined without one; a ConfigError naming the field
 * for text that is not START:END of whole numbers with START < END.
 * @category constructors
 */
export const rangeOf = (field: "data-range" | "eval-data-range", text: string | undefined): TokenFile.TokenRange | undefined => {
  if (text === undefined) return undefined
  const match = /^(\d+):(\d+)$/.exec(text.trim())
  const [first, end] = match === null ? [Number.NaN, Number.NaN] : [Number(match[1]), Number(match[2])]
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(end) && first < end))
    throw ConfigError.make(field, text, "is not a range of ids START:END (whole numbers, START below END)", `write --${field} START:END, such as 0:1000000`)
  return { first, end }
}

/**
 * A range given without the file it cuts (--data-range without --data, --eval-data-range without
 * --eval-data), as the ConfigError to throw; undefined otherwise.
 * @category guards
 */
export const withoutFile = (c: {
  readonly data?: string | undefined
  readonly "data-range"?: string | undefined
  readonly "eval-data"?: string | undefined
  readonly "eval-data-range"?: string | undefined
}): ConfigError.ConfigError | undefined => {
  for (const [file, range] of [
    ["data", "data-range"],
    ["eval-data", "eval-data-range"],
  ] as const)
    if (c[file] === undefined && c[range] !== undefined)
      return ConfigError.make(range, c[range], `cuts --${file}, but there is no --${file}`, `add --${file} FILE, or drop --${range}`)
  return undefined
}
