/**
 * StageLayers: the layers each pipeline rank of a mapping holds (pipeline/Partition's split, the
 * one training uses), and the split the planner gives a pipeline degree that does not divide the
 * layers: every middle rank ceil(L / pp) layers (floor where that leaves the ends too few), the
 * rest shared by the first and the last rank, the first the smaller half (Megatron's
 * num_layers_in_first/last_pipeline_stage; the first stage also holds the embedding, the last the
 * output layer and the loss).
 */
import * as Result from "effect/Result"
import * as Partition from "../pipeline/Partition.js"

/**
 * Layers of the first, a middle (the first when pp <= 2) and the last pp rank.
 * @category models
 */
export interface StageLayers {
  readonly first: number
  readonly middle: number
  readonly last: number
}

/**
 * What the split depends on: the model's layers, pp and vpp, and the end counts where uneven.
 * @category models
 */
export interface Split {
  readonly layers: number
  readonly pp: number
  readonly vpp: number
  readonly firstStageLayers?: number | undefined
  readonly lastStageLayers?: number | undefined
}

/**
 * The split of `model`'s layers under the planner's mapping `map`.
 * @category constructors
 */
export const splitOf = (model: { readonly layers: number }, map: Omit<Split, "layers">): Split => ({
  layers: model.layers,
  pp: map.pp,
  vpp: map.vpp,
  firstStageLayers: map.firstStageLayers,
  lastStageLayers: map.lastStageLayers,
})

/**
 * The layers each kind of pp rank holds under `s` (a valid split).
 * @category mapping
 */
export const of = (s: Split): StageLayers => {
  // The planner asks for the same few splits for every mapping it weighs.
  const key = `${s.layers},${s.pp},${s.vpp},${s.firstStageLayers},${s.lastStageLayers}`
  const known = memo.get(key)
  if (known !== undefined) return known
  const made = split(s)
  memo.set(key, made)
  return made
}

const memo = new Map<string, StageLayers>()

/**
 * The layer ranges pp rank `rank` holds under `s`, one a chunk.
 * @category mapping
 */
export const ranges = (s: Split, rank: number): Array<Partition.LayerRange> => {
  const part = Partition.make(s)
  return Array.from({ length: part.vpp }, (_, v) => Partition.layersOf(part, rank, v))
}

const split = (s: Split): StageLayers => {
  const part = Partition.make(s)
  return { first: Partition.layersOnRank(part, 0), middle: Partition.layersOnRank(part, Math.min(1, s.pp - 1)), last: Partition.layersOnRank(part, s.pp - 1) }
}

/**
 * The first and last ranks' layers for `layers` on `pp` ranks that pp does not divide (vpp 1),
 * or undefined where no split gives every middle rank a layer.
 * @category constructors
 */
export const unevenEnds = (layers: number, pp: number): { readonly firstStageLayers: number; readonly lastStageLayers: number } | undefined => {
  if (pp < 2 || layers % pp === 0) return undefined
  for (const middle of [Math.ceil(layers / pp), Math.floor(layers / pp)]) {
    const rest = layers - (pp - 2) * middle
    if (middle < 1 && pp > 2) continue
    if (rest < 0) continue
    const firstStageLayers = Math.floor(rest / 2)
    const split = { firstStageLayers, lastStageLayers: rest - firstStageLayers }
    if (Result.isSuccess(Partition.validate({ layers, pp, ...split }))) return split
  }
  return undefined
}
