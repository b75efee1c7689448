/**
 * ReplayOverflow: a routing case whose result JSON cannot carry.
 *
 * Every input of a case is finite (Replay refuses Infinity and NaN), yet float64 can still
 * overflow on the way: the z-loss squares each row's log-sum-exp (logits beyond about 1.3e154
 * in magnitude), and `unpermuted` sums a token's routed copies (tokens near 1.8e308). JSON has
 * no Infinity: JSON.stringify would print null, which reads as a value. So `pleat moe replay`
 * refuses such a case with one line naming the input that overflowed, by field and index.
 */
import * as ConfigError from "../errors/ConfigError.js"
import type * as Replay from "../moe/Replay.js"

/** The first non-finite number in a nested value, with its path (`[2][0]`), if any. */
const firstNonFinite = (v: unknown, at = ""): { readonly at: string; readonly value: number } | undefined => {
  if (typeof v === "number") return Number.isFinite(v) ? undefined : { at, value: v }
  if (!Array.isArray(v)) return undefined
  for (let i = 0; i < v.length; i++) {
    const found = firstNonFinite(v[i], `${at}[${i}]`)
    if (found !== undefined) return found
  }
  return undefined
}

/** The entry of largest magnitude of a matrix (row-major; the first on ties), with its path. */
const largest = (rows: ReadonlyArray<ReadonlyArray<number>>): { readonly at: string; readonly value: number } => {
  let best = { at: "[0][0]", value: 0 }
  rows.forEach((row, t) => {
    row.forEach((x, j) => {
      if (Math.abs(x) > Math.abs(best.value)) best = { at: `[${t}][${j}]`, value: x }
    })
  })
  return best
}

/**
 * The problem of an output that holds a non-finite number, naming the input that caused it;
 * undefined when every number is finite.
 * @category mapping
 */
export const problem = (c: Replay.Case, output: Replay.Output): ConfigError.ConfigError | undefined => {
  for (const [key, value] of Object.entries(output)) {
    const found = firstNonFinite(value)
    if (found === undefined) continue
    const cannot = `JSON cannot carry ${found.value}`
    if (key === "zLoss") {
      const cause = largest(c.logits)
      return ConfigError.make(
        `logits${cause.at}`,
        cause.value,
        `makes zLoss overflow float64 (it squares each row's log-sum-exp; ${cannot})`,
        "give logits below 1e154 in magnitude",
      )
    }
    if (key === "unpermuted" || key === "unpermutedWeighted") {
      const [t, h] = (found.at.match(/\d+/g) ?? ["0", "0"]).map(Number) as [number, number]
      return ConfigError.make(
        `tokens[${t}][${h}]`,
        c.tokens[t]?.[h],
        `makes ${key}[${t}][${h}] overflow float64 (it sums the token's routed copies; ${cannot})`,
        "give tokens whose sums over topk copies stay below 1.8e308 in magnitude",
      )
    }
    return ConfigError.make(`${key}${found.at}`, found.value, `overflows float64 (${cannot})`, "give inputs of smaller magnitude")
  }
  return undefined
}
