/**
 * MegatronSplit: Megatron-LM's `--split` of one `--data-path` dataset into training, validation
 * and test documents, as pleat's --data-range and --eval-data (its --eval-data-range).
 *
 * Megatron-Core's rule: the split's numbers (any separators; missing ones 0) are normalized to
 * sum 1, made cumulative (0, s0, s0 + s1, s0 + s1 + s2, in that order of float additions), and
 * split i holds documents round(c_i x D) to round(c_{i+1} x D) of the D documents, rounding halves
 * to even as Python's round does; an empty split is none. With --data-path and no --split,
 * Megatron-LM splits 969, 30, 1 (its default), and so does pleat. Documents are consecutive in
 * .bin (MegatronIndex.documentTable), so each split is one range of ids. The validation split
 * becomes --eval-data; the test split is not read (pleat evaluates one held-out set). Not with
 * --train-data-path or --valid-data-path, which Megatron-LM reads whole.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as MegatronIndex from "../train/MegatronIndex.js"
import type * as TokenFile from "../train/TokenFile.js"

/** Megatron-LM's default split. */
const defaultSplit = "969, 30, 1"

/** Python's round: to the nearest integer, halves to even. */
const roundHalfEven = (x: number): number => {
  const floor = Math.floor(x)
  const diff = x - floor
  if (diff > 0.5) return floor + 1
  if (diff < 0.5) return floor
  return floor % 2 === 0 ? floor : floor + 1
}

/**
 * The training, validation and test documents of `documents` under `split` (each [first, end),
 * or undefined where empty); a ConfigError on --split for text that is not up to three numbers of
 * 0 or more with a positive sum.
 */
const documentRanges = (split: string, documents: number): ReadonlyArray<readonly [number, number] | undefined> | ConfigError.ConfigError => {
  const numbers = (split.match(/[.0-9]+/g) ?? []).map(Number)
  const sum = numbers.reduce((a, b) => a + b, 0)
  if (numbers.length < 1 || numbers.length > 3 || numbers.some((n) => !Number.isFinite(n) || n < 0) || !(sum > 0))
    return ConfigError.make(
      "--split",
      split,
      "is not up to three proportions (training, validation, test) of 0 or more with a positive sum",
      "write --split 969,30,1 (Megatron-LM's default)",
    )
  const parts = [...numbers, 0, 0].slice(0, 3).map((n) => n / sum)
  const cumulative = [0]
  for (const p of parts) cumulative.push((cumulative.at(-1) as number) + p)
  return parts.map((_, i) => {
    const first = roundHalfEven((cumulative[i] as number) * documents)
    const end = roundHalfEven((cumulative[i + 1] as number) * documents)
    return (parts[i] as number) > 0 && first < end ? ([first, end] as const) : undefined
  })
}

/**
 * What pleat's flags make of `--data-path prefix` split by `split` (Megatron-LM's default when
 * undefined): --data-range for the training documents, --eval-data with its range for the
 * validation ones (where there are any), and the line telling the user; or the ConfigError.
 * @category constructors
 */
export const argsOf = (
  prefix: string,
  dtype: TokenFile.TokenDtype,
  split: string | undefined,
): { readonly args: ReadonlyArray<string>; readonly note: string } | ConfigError.ConfigError => {
  const table = MegatronIndex.documentTable(prefix, dtype, "--data-path")
  if (ConfigError.isConfigError(table)) return table
  try {
    return splitOf(prefix, split, table)
  } finally {
    table.close()
  }
}

const splitOf = (prefix: string, split: string | undefined, table: MegatronIndex.DocumentTable) => {
  const { documents } = table
  const ranges = documentRanges(split ?? defaultSplit, documents)
  if (ConfigError.isConfigError(ranges)) return ranges
  const [train, valid, test] = ranges
  if (train === undefined)
    return ConfigError.make(
      "--split",
      split ?? defaultSplit,
      `leaves no training documents of the ${documents} in ${prefix}`,
      "give training a larger share, such as --split 969,30,1",
    )
  const ids = ([first, end]: readonly [number, number]) => `${table.startOf(first)}:${table.startOf(end)}`
  const docs = ([first, end]: readonly [number, number]) => `documents ${first} to ${end - 1} (ids ${ids([first, end])})`
  const args = [`--data-range=${ids(train)}`, ...(valid === undefined ? [] : [`--eval-data=${prefix}.bin`, `--eval-data-range=${ids(valid)}`])]
  const heldOut = valid === undefined ? "no validation documents" : `validation on ${docs(valid)}`
  const rest = test === undefined ? "" : `; the test split (${test[1] - test[0]} documents) is not read`
  return { args, note: `--split ${split ?? `${defaultSplit} (Megatron-LM's default)`} of ${prefix}'s ${documents} documents: training on ${docs(train)}, ${heldOut}${rest}` }
}
