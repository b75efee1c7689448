/**
 * A slow, obviously correct oracle for the rank-group math, written without any pleat code.
 *
 * Coordinates come from repeated division over the axes in order; a group over a set of axes
 * is found by bucketing every rank by its other coordinates; groups are sorted by those
 * coordinates read as a number with the first axis least significant, members likewise by the
 * grouped coordinates. Validity is decided by building both grids' pipeline groups in full.
 */

export type Token = "tp" | "cp" | "ep" | "dp" | "pp"
export const allTokens: ReadonlyArray<Token> = ["tp", "cp", "ep", "dp", "pp"]

export interface OracleInput {
  readonly world: number
  readonly tp: number
  readonly cp: number
  readonly pp: number
  readonly ep: number
  readonly etp: number
  readonly order: ReadonlyArray<Token>
}

/** Every permutation of the five tokens. */
export const allOrders: ReadonlyArray<ReadonlyArray<Token>> = (() => {
  const out: Array<Array<Token>> = []
  const go = (prefix: Array<Token>, rest: Array<Token>) => {
    if (rest.length === 0) out.push(prefix)
    rest.forEach((t, i) => go([...prefix, t], [...rest.slice(0, i), ...rest.slice(i + 1)]))
  }
  go([], [...allTokens])
  return out
})()

/** Per-token sizes of one grid. */
export const sizesOf = (c: OracleInput, grid: "dense" | "expert"): Record<Token, number> => {
  const dp = c.world / (c.tp * c.cp * c.pp)
  const edp = c.world / (c.etp * c.ep * c.pp)
  return grid === "dense" ? { tp: c.tp, cp: c.cp, ep: 1, dp, pp: c.pp } : { tp: c.etp, cp: 1, ep: c.ep, dp: edp, pp: c.pp }
}

/** A rank's coordinate along each token, by repeated division (first token fastest). */
export const coordsOf = (rank: number, order: ReadonlyArray<Token>, sizes: Record<Token, number>): Record<Token, number> => {
  const out = { tp: 0, cp: 0, ep: 0, dp: 0, pp: 0 }
  let rest = rank
  for (const t of order) {
    out[t] = rest % sizes[t]
    rest = (rest - out[t]) / sizes[t]
  }
  return out
}

/** Reads coordinates of the given tokens as one number, first token least significant. */
const keyOf = (coords: Record<Token, number>, tokens: ReadonlyArray<Token>, sizes: Record<Token, number>): number => {
  let key = 0
  for (let i = tokens.length - 1; i >= 0; i--) {
    const t = tokens[i] as Token
    key = key * sizes[t] + coords[t]
  }
  return key
}

/** Groups over `masked` tokens, by bucketing and sorting. */
export const groupsOf = (world: number, order: ReadonlyArray<Token>, sizes: Record<Token, number>, masked: ReadonlyArray<Token>): Array<Array<number>> => {
  const inMask = order.filter((t) => masked.includes(t))
  const outMask = order.filter((t) => !masked.includes(t))
  const buckets = new Map<number, Array<{ rank: number; key: number }>>()
  for (let r = 0; r < world; r++) {
    const c = coordsOf(r, order, sizes)
    const g = keyOf(c, outMask, sizes)
    const list = buckets.get(g) ?? []
    list.push({ rank: r, key: keyOf(c, inMask, sizes) })
    buckets.set(g, list)
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([, members]) => members.sort((a, b) => a.key - b.key).map((m) => m.rank))
}

/** Whether pleat must accept this configuration (all degrees already positive integers). */
export const isValid = (c: OracleInput): boolean => {
  if (c.world % (c.tp * c.cp * c.pp) !== 0 || c.world % (c.etp * c.ep * c.pp) !== 0) return false
  if (c.order.indexOf("tp") > c.order.indexOf("ep")) return false
  const dense = sizesOf(c, "dense")
  const expert = sizesOf(c, "expert")
  if (c.order[c.order.length - 1] !== "pp" && c.pp !== 1 && dense.dp !== expert.dp) return false
  const a = groupsOf(c.world, c.order, dense, ["pp"])
  const b = groupsOf(c.world, c.order, expert, ["pp"])
  return JSON.stringify(a) === JSON.stringify(b)
}
