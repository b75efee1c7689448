/**
 * MemoryTable: the per-rank memory of `pleat train`'s summary (RankMemory: parameters,
 * gradients, optimizer state, peak activations kept for the backward) as a text table, and the
 * byte units every byte count of the summary uses. Up to `shownRanks` ranks get a row each;
 * larger jobs show the first ones and the largest value of every column.
 */
import type * as RankMemory from "../train/RankMemory.js"

/** Ranks listed one per row; beyond, the table ends with a "max" row. */
const shownRanks = 16

/**
 * A byte count in binary units.
 * @category formatting
 */
export const formatBytes = (n: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  const e = Math.min(units.length - 1, Math.max(0, Math.floor(Math.log2(Math.max(1, n)) / 10)))
  return e === 0 ? `${n} B` : `${(n / 1024 ** e).toFixed(1)} ${units[e]}`
}

const columns = ["parameters", "gradients", "optimizer", "activations", "total"] as const

const cells = (m: RankMemory.RankMemory): Array<number> => [
  m.parameterBytes,
  m.gradientBytes,
  m.optimizerStateBytes,
  m.peakActivationBytes,
  m.parameterBytes + m.gradientBytes + m.optimizerStateBytes + m.peakActivationBytes,
]

/**
 * The table's lines: a title, a header and a row per rank (or the first ranks and a max row).
 * @category formatting
 */
export const lines = (ranks: ReadonlyArray<RankMemory.RankMemory>): Array<string> => {
  const rows: Array<[string, Array<number>]> = ranks.slice(0, shownRanks).map((m, r) => [`${r}`, cells(m)])
  if (ranks.length > shownRanks) {
    const all = ranks.map(cells)
    rows.push(["max", columns.map((_, c) => Math.max(...all.map((row) => row[c] as number)))])
  }
  const text = rows.map(([rank, values]) => [rank, ...values.map(formatBytes)])
  const header = ["rank", ...columns]
  const widths = header.map((h, c) => Math.max(h.length, ...text.map((row) => (row[c] as string).length)))
  const line = (row: ReadonlyArray<string>) => row.map((cell, c) => cell.padStart(widths[c] as number)).join("  ")
  return ["memory per rank (activations: the peak the tapes keep for the backward; --recompute lowers it):", line(header), ...text.map(line)]
}
