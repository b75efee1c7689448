/**
 * RoutingStats: what a recorded routing says (RoutingFiles' step files: experts [layers, T, K]):
 * each MoE layer's tokens per expert and its imbalance, and how two routings of the same tokens
 * agree (the fraction of tokens routed to the same set of experts, and the mean share of a
 * token's experts the two have in common), as RL's rollout-training routing mismatch is measured.
 */

/**
 * How many of a layer's (token, expert) pairs went to each expert: `experts` is [layers, T, K].
 * @category mapping
 */
export const tokensPerExpert = (experts: ArrayLike<number>, layer: number, tokens: number, k: number, numExperts: number): Array<number> => {
  const counts = new Array<number>(numExperts).fill(0)
  const base = layer * tokens * k
  for (let i = 0; i < tokens * k; i++) {
    const e = experts[base + i] as number
    counts[e] = (counts[e] as number) + 1
  }
  return counts
}

/**
 * The most loaded expert's count over the mean count (1: balanced; 1 when nothing was routed).
 * @category mapping
 */
export const imbalance = (counts: ReadonlyArray<number>): number => {
  const total = counts.reduce((a, b) => a + b, 0)
  return total === 0 ? 1 : Math.max(...counts) / (total / counts.length)
}

/**
 * The (token, expert) pairs each of `ep` expert-parallel ranks gets from a layer's tokens per
 * expert, rank r holding experts [r E / ep, (r + 1) E / ep) (Megatron-Core's and pleat's
 * placement). `ep` must divide the experts.
 * @category mapping
 */
export const rankLoads = (perExpert: ReadonlyArray<number>, ep: number): Array<number> => {
  if (perExpert.length % ep !== 0) throw new Error(`RoutingStats.rankLoads: ep ${ep} does not divide ${perExpert.length} experts`)
  const per = perExpert.length / ep
  const loads = new Array<number>(ep).fill(0)
  perExpert.forEach((n, e) => {
    const r = Math.floor(e / per)
    loads[r] = (loads[r] as number) + n
  })
  return loads
}

/**
 * How two routings [layers, T, K] of the same tokens agree at `layer`: `same`, the fraction of
 * tokens whose K experts are the same set in both; `overlap`, the mean over tokens of the
 * experts the two share, divided by K (1 and 1 for T = 0).
 * @category mapping
 */
export const agreement = (a: ArrayLike<number>, b: ArrayLike<number>, layer: number, tokens: number, k: number): { readonly same: number; readonly overlap: number } => {
  if (tokens === 0) return { same: 1, overlap: 1 }
  let same = 0
  let shared = 0
  const base = layer * tokens * k
  for (let t = 0; t < tokens; t++) {
    let common = 0
    for (let i = 0; i < k; i++) {
      const e = a[base + t * k + i] as number
      for (let j = 0; j < k; j++) {
        if ((b[base + t * k + j] as number) === e) {
          common++
          break
        }
      }
    }
    shared += common
    if (common === k) same++
  }
  return { same: same / tokens, overlap: shared / (tokens * k) }
}
