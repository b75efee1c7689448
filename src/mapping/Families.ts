/**
 * Families: the named rank-group families of a folded mapping, as `pleat groups --json` lists them.
 *
 * Dense families come from the attention grid, expert families from the MoE grid. Each family is a
 * list of rank lists in the reference order (see RankGrid). `embedding` holds the first and last
 * stage of every pipeline group (only the first when pp = 1): the ranks that share the tied
 * input/output embedding.
 */
import type { AxisName } from "./Axis.js"
import * as ParallelConfig from "./ParallelConfig.js"
import * as RankGrid from "./RankGrid.js"

/**
 * The family names, in output order.
 * @category models
 */
export const familyNames = ["tp", "cp", "dp", "pp", "dp-cp", "tp-cp", "tp-pp", "tp-dp", "tp-dp-cp", "etp", "ep", "edp", "etp-ep", "etp-ep-pp", "embedding"] as const

/**
 * A family name.
 * @category models
 */
export type FamilyName = (typeof familyNames)[number]

/**
 * A family computed from one grid over a set of its axes (every family but `embedding`).
 * @category models
 */
export interface GridFamily {
  readonly grid: "dense" | "expert"
  readonly axes: ReadonlyArray<AxisName>
}

/**
 * Where each grid family comes from: which grid, which axes.
 * @category models
 */
export const gridFamilies: Readonly<Record<Exclude<FamilyName, "embedding">, GridFamily>> = {
  tp: { grid: "dense", axes: ["tp"] },
  cp: { grid: "dense", axes: ["cp"] },
  dp: { grid: "dense", axes: ["dp"] },
  pp: { grid: "dense", axes: ["pp"] },
  "dp-cp": { grid: "dense", axes: ["dp", "cp"] },
  "tp-cp": { grid: "dense", axes: ["tp", "cp"] },
  "tp-pp": { grid: "dense", axes: ["tp", "pp"] },
  "tp-dp": { grid: "dense", axes: ["tp", "dp"] },
  "tp-dp-cp": { grid: "dense", axes: ["tp", "dp", "cp"] },
  etp: { grid: "expert", axes: ["etp"] },
  ep: { grid: "expert", axes: ["ep"] },
  edp: { grid: "expert", axes: ["edp"] },
  "etp-ep": { grid: "expert", axes: ["etp", "ep"] },
  "etp-ep-pp": { grid: "expert", axes: ["etp", "ep", "pp"] },
}

/**
 * Every family of a configuration.
 * @category models
 */
export type Families = Readonly<Record<FamilyName, Array<Array<number>>>>

/**
 * The embedding groups: first and last rank of each pipeline group (only the first when pp = 1).
 * @category mapping
 */
const embeddingGroups = (ppGroups: ReadonlyArray<ReadonlyArray<number>>): Array<Array<number>> =>
  ppGroups.map((g) => (g.length > 1 ? [g[0] as number, g[g.length - 1] as number] : [g[0] as number]))

/**
 * Computes every family of a configuration.
 * @category mapping
 */
export const all = (config: ParallelConfig.ParallelConfig): Families => {
  const grids = { dense: ParallelConfig.denseGrid(config), expert: ParallelConfig.expertGrid(config) }
  const out: Partial<Record<FamilyName, Array<Array<number>>>> = {}
  for (const name of familyNames) {
    if (name === "embedding") continue
    const family = gridFamilies[name]
    out[name] = RankGrid.groups(grids[family.grid], family.axes)
  }
  out.embedding = embeddingGroups(out.pp ?? [])
  return out as Families
}

/**
 * One family of a configuration, by name.
 * @category mapping
 */
export const family = (config: ParallelConfig.ParallelConfig, name: FamilyName): Array<Array<number>> => {
  if (name === "embedding") return embeddingGroups(family(config, "pp"))
  const f = gridFamilies[name]
  const grid = f.grid === "dense" ? ParallelConfig.denseGrid(config) : ParallelConfig.expertGrid(config)
  return RankGrid.groups(grid, f.axes)
}
