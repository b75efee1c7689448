/**
 * Folding: every rank's place in the attention grid and in the MoE grid.
 *
 * MoE Parallel Folding runs attention on tp x cp x dp x pp and MoE on etp x ep x edp x pp over the
 * same ranks. Within one pipeline stage both grids cover the same W/pp ranks, so the map from a
 * rank's attention coordinates to its MoE coordinates is a bijection between the two grids. With
 * the default order, in a stage with q = rank mod (W/pp):
 *
 *   q = tp + TP*(cp + CP*dp)   (attention)       q = etp + ETP*(ep + EP*edp)   (MoE)
 */
import type { AxisName } from "./Axis.js"
import * as ParallelConfig from "./ParallelConfig.js"
import * as RankGrid from "./RankGrid.js"

/**
 * The attention coordinates of a rank.
 * @category models
 */
export interface DenseCoordinates {
  readonly tp: number
  readonly cp: number
  readonly dp: number
  readonly pp: number
}

/**
 * The MoE coordinates of a rank (pp is shared with the attention grid).
 * @category models
 */
export interface ExpertCoordinates {
  readonly etp: number
  readonly ep: number
  readonly edp: number
  readonly pp: number
}

/**
 * A rank and its coordinates in both grids.
 * @category models
 */
export interface RankPlace {
  readonly rank: number
  readonly tp: number
  readonly cp: number
  readonly dp: number
  readonly pp: number
  readonly etp: number
  readonly ep: number
  readonly edp: number
}

/**
 * Both grids of a configuration, built once so that per-rank questions are cheap.
 * @category models
 */
export interface Fold {
  readonly config: ParallelConfig.ParallelConfig
  readonly dense: RankGrid.RankGrid
  readonly expert: RankGrid.RankGrid
}

/**
 * Builds the fold of a configuration.
 * @category constructors
 */
export const make = (config: ParallelConfig.ParallelConfig): Fold => ({
  config,
  dense: ParallelConfig.denseGrid(config),
  expert: ParallelConfig.expertGrid(config),
})

/**
 * A rank's attention coordinates.
 * @category mapping
 */
export const denseCoordinates = (fold: Fold, rank: number): DenseCoordinates => {
  const c = RankGrid.coordinates(fold.dense, rank)
  return { tp: c.tp ?? 0, cp: c.cp ?? 0, dp: c.dp ?? 0, pp: c.pp ?? 0 }
}

/**
 * A rank's MoE coordinates.
 * @category mapping
 */
export const expertCoordinates = (fold: Fold, rank: number): ExpertCoordinates => {
  const c = RankGrid.coordinates(fold.expert, rank)
  return { etp: c.etp ?? 0, ep: c.ep ?? 0, edp: c.edp ?? 0, pp: c.pp ?? 0 }
}

/**
 * The rank at attention coordinates.
 * @category mapping
 */
export const rankOfDense = (fold: Fold, c: DenseCoordinates): number => RankGrid.rankAt(fold.dense, c)

/**
 * The rank at MoE coordinates.
 * @category mapping
 */
export const rankOfExpert = (fold: Fold, c: ExpertCoordinates): number => RankGrid.rankAt(fold.expert, c)

/**
 * A rank and both of its coordinate sets.
 * @category mapping
 */
export const place = (fold: Fold, rank: number): RankPlace => {
  const d = denseCoordinates(fold, rank)
  const e = expertCoordinates(fold, rank)
  return { rank, tp: d.tp, cp: d.cp, dp: d.dp, pp: d.pp, etp: e.etp, ep: e.ep, edp: e.edp }
}

/**
 * Every rank's place, in rank order.
 * @category mapping
 */
export const places = (fold: Fold): Array<RankPlace> => {
  // The per-rank lookups of `place` resolve axes by name; for a whole table resolve them once.
  const digit = (grid: RankGrid.RankGrid, name: AxisName) => {
    const a = RankGrid.axis(grid, name)
    return (r: number) => Math.floor(r / a.stride) % a.size
  }
  const tp = digit(fold.dense, "tp")
  const cp = digit(fold.dense, "cp")
  const dp = digit(fold.dense, "dp")
  const pp = digit(fold.dense, "pp")
  const etp = digit(fold.expert, "etp")
  const ep = digit(fold.expert, "ep")
  const edp = digit(fold.expert, "edp")
  const out = new Array<RankPlace>(fold.config.world)
  for (let r = 0; r < fold.config.world; r++) {
    out[r] = { rank: r, tp: tp(r), cp: cp(r), dp: dp(r), pp: pp(r), etp: etp(r), ep: ep(r), edp: edp(r) }
  }
  return out
}

/**
 * The MoE coordinates of the rank at the given attention coordinates: the fold itself.
 * @category mapping
 */
export const foldToExpert = (fold: Fold, c: DenseCoordinates): ExpertCoordinates => expertCoordinates(fold, rankOfDense(fold, c))

/**
 * The attention coordinates of the rank at the given MoE coordinates: the inverse fold.
 * @category mapping
 */
export const unfoldToDense = (fold: Fold, c: ExpertCoordinates): DenseCoordinates => denseCoordinates(fold, rankOfExpert(fold, c))

/**
 * The next rank in `rank`'s pipeline group (wraps around, as the reference does).
 * @category mapping
 */
export const ppNext = (fold: Fold, rank: number): number => ppNeighbour(fold, rank, +1)

/**
 * The previous rank in `rank`'s pipeline group (wraps around).
 * @category mapping
 */
export const ppPrev = (fold: Fold, rank: number): number => ppNeighbour(fold, rank, -1)

const ppNeighbour = (fold: Fold, rank: number, step: 1 | -1): number => {
  const a = RankGrid.axis(fold.dense, "pp")
  const stage = Math.floor(rank / a.stride) % a.size
  const next = (stage + step + a.size) % a.size
  return rank + (next - stage) * a.stride
}

/**
 * Whether `rank` is in the first pipeline stage.
 * @category guards
 */
export const isFirstStage = (fold: Fold, rank: number): boolean => RankGrid.coordinate(fold.dense, rank, "pp") === 0

/**
 * Whether `rank` is in the last pipeline stage.
 * @category guards
 */
export const isLastStage = (fold: Fold, rank: number): boolean => RankGrid.coordinate(fold.dense, rank, "pp") === fold.config.sizes.pp - 1
