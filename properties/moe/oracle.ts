/**
 * oracle: slow, from-definition versions of the MoE core on nested number arrays, written from
 * semantics.md section 2 without looking at src/moe. Every ranking is a full sort with an
 * explicit tie rule (value descending, index ascending), so the oracle is obviously
 * deterministic.
 */

export type Matrix = Array<Array<number>>

export interface OracleCase {
  readonly numExperts: number
  readonly topk: number
  readonly scoreFunction: "softmax" | "sigmoid" | "sqrtsoftplus"
  readonly preSoftmax: boolean
  readonly capacityFactor: number | null
  readonly dropPolicy: "probs" | "position"
  readonly padToCapacity: boolean
  readonly numGroups: number | null
  readonly groupTopk: number | null
  readonly scalingFactor: number | null
  readonly expertBias: Array<number> | null
  readonly logits: Matrix
  readonly tokens: Matrix
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x))

/**
 * log(1 + e^x) as pleat rounds it (ScoreFunctions.ts): x + log1p(e^-x) above 0, log1p(e^x) below.
 * Scores an ulp apart tie or not after the aux loss's normalization, and a tie breaks to the lower
 * expert: the naive log(1 + Math.exp(x)) scored logits an ulp off 0 an ulp off 0's score where
 * pleat's rounds to it, and the aux losses differed by ~1% (a CI run found it).
 */
const softplus = (x: number): number => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))

/** The elementwise score functions from their definitions: sigmoid, sqrt(softplus(x)). */
export const elementwiseScore = (fn: "sigmoid" | "sqrtsoftplus") => (fn === "sigmoid" ? sigmoid : (x: number) => Math.sqrt(softplus(x)))

export const softmax = (row: ReadonlyArray<number>): Array<number> => {
  const m = Math.max(...row)
  const ex = row.map((v) => Math.exp(v - m))
  const s = ex.reduce((a, b) => a + b, 0)
  return ex.map((v) => v / s)
}

/** Positions of `values` ranked best first: value descending, index ascending. */
export const ranked = (values: ReadonlyArray<number>, candidates?: ReadonlyArray<number>): Array<number> =>
  [...(candidates ?? values.map((_, i) => i))].sort((a, b) => {
    const va = values[a] as number
    const vb = values[b] as number
    return va === vb ? a - b : vb - va > 0 ? 1 : -1
  })

/** The selected experts of one token, best first (the order the probs are summed in). */
export const selectRow = (row: ReadonlyArray<number>, c: Pick<OracleCase, "topk" | "scoreFunction" | "preSoftmax" | "numGroups" | "groupTopk" | "expertBias">): Array<number> => {
  const e = row.length
  let sel: Array<number>
  if (c.scoreFunction === "softmax") sel = c.preSoftmax ? softmax(row) : [...row]
  else sel = row.map((v, j) => elementwiseScore(c.scoreFunction as "sigmoid" | "sqrtsoftplus")(v) + (c.expertBias === null ? 0 : (c.expertBias[j] as number)))
  let candidates = sel.map((_, j) => j)
  if (c.numGroups !== null && c.groupTopk !== null) {
    const per = e / c.numGroups
    const take = Math.floor(c.topk / c.groupTopk)
    const groupScores: Array<number> = []
    for (let g = 0; g < c.numGroups; g++) {
      const members = sel.slice(g * per, (g + 1) * per).sort((a, b) => b - a)
      groupScores.push(members.slice(0, take).reduce((a, b) => a + b, 0))
    }
    const keptGroups = new Set(ranked(groupScores).slice(0, c.groupTopk))
    candidates = candidates.filter((j) => keptGroups.has(Math.floor(j / per)))
  }
  return ranked(sel, candidates).slice(0, c.topk)
}

/** Router probs and map from the definition (2.2.4). */
export const route = (c: OracleCase): { probs: Matrix; map: Matrix } => {
  const probs: Matrix = []
  const map: Matrix = []
  for (const row of c.logits) {
    const chosen = selectRow(row, c)
    const p = row.map(() => 0)
    if (c.scoreFunction === "softmax" && c.preSoftmax) {
      const s = softmax(row)
      for (const j of chosen) p[j] = s[j] as number
    } else if (c.scoreFunction === "softmax") {
      const q = softmax(chosen.map((j) => row[j] as number))
      chosen.forEach((j, i) => (p[j] = q[i] as number))
    } else {
      const s = chosen.map((j) => elementwiseScore(c.scoreFunction as "sigmoid" | "sqrtsoftplus")(row[j] as number))
      const total = s.reduce((a, b) => a + b, 0)
      chosen.forEach((j, i) => (p[j] = c.topk > 1 ? (s[i] as number) / (total + 1e-20) : (s[i] as number)))
    }
    const scale = c.scalingFactor !== null && c.scalingFactor !== 0 ? c.scalingFactor : 1
    probs.push(p.map((v) => v * scale))
    map.push(row.map((_, j) => (chosen.includes(j) ? 1 : 0)))
  }
  return { probs, map }
}

export const capacityOf = (t: number, k: number, e: number, cf: number): number => Math.ceil(((t * k) / e) * cf)

/** Dropping / padding from the definition (2.2.6), policies written two different ways. */
export const drop = (probs: Matrix, map: Matrix, e: number, c: Pick<OracleCase, "topk" | "capacityFactor" | "dropPolicy" | "padToCapacity">): { probs: Matrix; map: Matrix } => {
  if (c.capacityFactor === null || c.capacityFactor < 0) return { probs, map }
  const t = probs.length
  const cap = capacityOf(t, c.topk, e, c.capacityFactor)
  const keep: Matrix = probs.map((row) => row.map(() => 0))
  for (let ex = 0; ex < e; ex++) {
    let chosen: Array<number>
    if (c.dropPolicy === "position") {
      // The first `cap` routed tokens; then (for padding) the first unrouted ones.
      const routed = [...Array(t).keys()].filter((i) => map[i]?.[ex] === 1)
      const unrouted = [...Array(t).keys()].filter((i) => map[i]?.[ex] !== 1)
      chosen = [...routed, ...unrouted].slice(0, cap)
    } else {
      chosen = ranked(probs.map((row) => row[ex] as number)).slice(0, cap)
    }
    for (const i of chosen) (keep[i] as Array<number>)[ex] = 1
  }
  const finalMap = c.padToCapacity ? keep : map.map((row, i) => row.map((v, j) => (v === 1 && keep[i]?.[j] === 1 ? 1 : 0)))
  return { probs: probs.map((row, i) => row.map((v, j) => (finalMap[i]?.[j] === 1 ? v : 0))), map: finalMap }
}

/** Permute from the definition: all routed pairs sorted by (expert, token). */
export const permuteOrder = (map: Matrix): Array<{ t: number; e: number }> => {
  const pairs: Array<{ t: number; e: number }> = []
  map.forEach((row, t) => row.forEach((v, e) => v === 1 && pairs.push({ t, e })))
  return pairs.sort((a, b) => a.e - b.e || a.t - b.t)
}

/** aux_loss from f_e and P_e (2.1.3), over the scores of 2.2.5. */
export const auxLoss = (logits: Matrix, k: number, e: number, fn: "softmax" | "sigmoid" | "sqrtsoftplus"): number => {
  const t = logits.length
  if (t === 0) return 0
  const scores = logits.map((row) => {
    if (fn === "softmax") return softmax(row)
    const s = row.map(elementwiseScore(fn as "sigmoid" | "sqrtsoftplus"))
    const total = s.reduce((a, b) => a + b, 0)
    return s.map((v) => v / (total + 1e-20))
  })
  const counts = new Array<number>(e).fill(0)
  for (const row of scores) for (const j of ranked(row).slice(0, k)) counts[j] = (counts[j] as number) + 1
  let loss = 0
  for (let j = 0; j < e; j++) {
    const f = (counts[j] as number) / (k * t)
    const p = scores.reduce((a, row) => a + (row[j] as number), 0) / t
    loss += f * p
  }
  return e * loss
}

/** z-loss: mean over tokens of logsumexp^2 (2.1.6), 0 for no tokens. */
export const zLoss = (logits: Matrix): number => {
  if (logits.length === 0) return 0
  const lse = logits.map((row) => {
    const m = Math.max(...row)
    return m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0))
  })
  return lse.reduce((a, v) => a + v * v, 0) / logits.length
}

/** The whole replay output from the definitions. */
export const replay = (c: OracleCase) => {
  const e = c.numExperts
  const routed = route(c)
  const final = drop(routed.probs, routed.map, e, c)
  const pairs = permuteOrder(final.map)
  const h = c.tokens[0]?.length ?? 0
  const unpermuted = c.tokens.map((row, t) => row.map((x) => x * (final.map[t] as Array<number>).reduce((a, b) => a + b, 0)))
  const weighted = c.tokens.map((row, t) => row.map((x) => x * (final.probs[t] as Array<number>).reduce((a, b) => a + b, 0)))
  return {
    probs: final.probs,
    routingMap: final.map,
    tokensPerExpert: [...Array(e).keys()].map((j) => pairs.filter((p) => p.e === j).length),
    sortedIndices: pairs.map((p) => p.t),
    permuted: pairs.map((p) => [...(c.tokens[p.t] ?? new Array<number>(h).fill(0))]),
    unpermuted,
    unpermutedWeighted: weighted,
    auxLoss: auxLoss(c.logits, c.topk, e, c.scoreFunction),
    zLoss: zLoss(c.logits),
  }
}
