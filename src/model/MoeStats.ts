/**
 * MoeStats: what the MoE layers measured in a step, per layer: the value of each aux and z
 * loss (without its coefficient) and the routed (token, expert) pairs dropped for capacity.
 *
 * Each rank measures its own shares on each micro-batch (ModelContext.MoeStats); a rank's step
 * contribution divides them so that adding up every rank's contribution gives, per layer, the
 * mean over the global batch's micro-batches of the layer's loss: aux, seq_aux and z losses add
 * up over tp-cp, so each share is divided by M * dp (M micro-batches per dp rank); global_aux
 * shares add up over tp-dp-cp (one loss per micro-batch index), so they are divided by M.
 * Dropped pairs are counted over the whole step.
 */
import type * as MoeLayer from "../moe/MoeLayer.js"
import * as ModelContext from "./ModelContext.js"

/**
 * What one MoE layer measured on this rank and micro-batch: its aux and z losses (this rank's
 * shares, without coefficients) and the routed (token, expert) pairs its capacity dropped.
 * @category models
 */
export interface MoeStats {
  /** The MoE layer's loss terms, or an MTP layer's `mtp_loss` (MultiTokenPrediction). */
  readonly terms: ReadonlyArray<MoeLayer.LossTerm | { readonly name: "mtp_loss"; readonly value: number }>
  readonly dropped: number
}

/**
 * The MoE layers among layers [start, end), in order.
 * @category mapping
 */
const moeLayersOf = (sizes: ModelContext.Sizes, start: number, end: number): Array<number> =>
  Array.from({ length: end - start }, (_, i) => start + i).filter((l) => ModelContext.isMoe(sizes, l))

/**
 * The layers a chunk's statistics come from, in the order it reports them: its MoE layers among
 * [start, end), and on the last chunk the multi-token prediction layers' MoE layers, then every
 * MTP layer again (its `mtp_loss`, MultiTokenPrediction).
 * @category mapping
 */
export const statLayersOf = (sizes: ModelContext.Sizes, start: number, end: number, isLast: boolean): Array<number> => {
  const mtp = isLast ? ModelContext.mtpLayersOf(sizes) : 0
  const mtpLayers = Array.from({ length: mtp }, (_, k) => sizes.layers + k)
  return [...moeLayersOf(sizes, start, end), ...mtpLayers.filter((l) => ModelContext.isMoe(sizes, l)), ...mtpLayers]
}

/**
 * A layer's step contribution (or, added up over ranks, its step value).
 * @category models
 */
export interface LayerStep {
  readonly layer: number
  readonly losses: Readonly<Record<string, number>>
  readonly dropped: number
}

/**
 * Adds up a rank's micro-batch measurements into its step contribution.
 * @category constructors
 */
export const accumulator = (microBatches: number, dp: number) => {
  const byLayer = new Map<number, { losses: Record<string, number>; dropped: number }>()
  /** `moeLayers`: the MoE layers of the chunk that measured `stats`, in order (statLayersOf). */
  const add = (moeLayers: ReadonlyArray<number>, stats: ReadonlyArray<MoeStats>): void => {
    stats.forEach((s, i) => {
      const layer = moeLayers[i] as number
      const acc = byLayer.get(layer) ?? { losses: {}, dropped: 0 }
      for (const t of s.terms) acc.losses[t.name] = (acc.losses[t.name] ?? 0) + t.value / (t.name === "global_aux_loss" ? microBatches : microBatches * dp)
      acc.dropped += s.dropped
      byLayer.set(layer, acc)
    })
  }
  const result = (): Array<LayerStep> => [...byLayer].sort((a, b) => a[0] - b[0]).map(([layer, v]) => ({ layer, losses: v.losses, dropped: v.dropped }))
  return { add, result }
}

/**
 * Adds up the ranks' contributions, per layer.
 * @category combinators
 */
export const combine = (contributions: ReadonlyArray<ReadonlyArray<LayerStep>>): Array<LayerStep> => {
  const byLayer = new Map<number, { losses: Record<string, number>; dropped: number }>()
  for (const rank of contributions)
    for (const l of rank) {
      const acc = byLayer.get(l.layer) ?? { losses: {}, dropped: 0 }
      for (const [name, v] of Object.entries(l.losses)) acc.losses[name] = (acc.losses[name] ?? 0) + v
      acc.dropped += l.dropped
      byLayer.set(l.layer, acc)
    }
  return [...byLayer].sort((a, b) => a[0] - b[0]).map(([layer, v]) => ({ layer, losses: v.losses, dropped: v.dropped }))
}
