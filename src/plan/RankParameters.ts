/**
 * RankParameters: how many parameters one rank of a pipeline stage holds, split into those its
 * data-parallel group shares (attention, router, dense and shared MLPs, norms, embeddings:
 * sharded over tp or replicated, reduced over dp x cp) and the experts' (sharded over
 * ep x etp, reduced over edp). Counted from the model's own parameter list (Params.specs, what
 * training allocates), by each parameter's layer and sharding; a stage's layers hold the average
 * layer's share (as if MoE and dense layers were spread evenly; with leading dense layers,
 * denseFirst, the first stage really holds more dense and fewer expert parameters).
 */
import type * as ModelConfig from "../train/ModelConfig.js"
import * as Params from "../train/Params.js"
import type { Mapping } from "./Job.js"
import * as StageLayers from "./StageLayers.js"

/**
 * Parameters of one rank.
 * @category models
 */
export interface RankParameters {
  readonly dense: number
  readonly expert: number
}

/** Parameter counts of a part of the model: split over tp, replicated, and experts'. */
interface Part {
  sharded: number
  replicated: number
  expert: number
}

/** The model's parameters by part: every layer together, the first stage's extras (layer -1), the last's (layer L). */
interface Totals {
  readonly layers: Part
  readonly first: Part
  readonly last: Part
  /** The tied embedding's size: held on both ends, once when pp = 1. */
  readonly tiedCopy: number
}

const known = new WeakMap<ModelConfig.ModelConfig, Totals>()

const totals = (m: ModelConfig.ModelConfig): Totals => {
  const cached = known.get(m)
  if (cached !== undefined) return cached
  const part = (): Part => ({ sharded: 0, replicated: 0, expert: 0 })
  const t = { layers: part(), first: part(), last: part(), tiedCopy: 0 }
  for (const spec of Params.specs(m)) {
    const size = spec.shape.reduce((a, b) => a * b, 1)
    const add = (p: Part) => {
      if (Params.isExpert(spec)) p.expert += size
      else if (spec.sharding === "replicated") p.replicated += size
      else p.sharded += size
    }
    if (spec.layer === -1) {
      add(t.first)
      if (spec.tied === true) {
        add(t.last)
        t.tiedCopy += size
      }
    } else if (spec.layer === m.layers) add(t.last)
    else add(t.layers)
  }
  known.set(m, t)
  return t
}

/**
 * The parameters of a rank on the first (`edge` "first") or last pipeline stage, or a middle one
 * (its layers: StageLayers).
 * With pp = 1 the one stage holds all of them (a tied embedding once).
 * @category mapping
 */
export const ofRank = (m: ModelConfig.ModelConfig, map: Mapping, edge: "first" | "last" | "middle"): RankParameters => {
  const t = totals(m)
  // The stage's share of the layers (1 / pp unless the first or last stage has its own count).
  const split = StageLayers.of({ layers: m.layers, pp: map.pp, vpp: map.vpp, firstStageLayers: map.firstStageLayers, lastStageLayers: map.lastStageLayers })
  const share = (map.pp === 1 ? m.layers : split[edge]) / m.layers
  const dense = (p: Part) => p.sharded / map.tp + p.replicated
  const ends = map.pp === 1 ? dense(t.first) + dense(t.last) - t.tiedCopy / map.tp : edge === "first" ? dense(t.first) : edge === "last" ? dense(t.last) : 0
  return {
    dense: share * dense(t.layers) + ends,
    expert: (share * t.layers.expert) / (map.ep * map.etp),
  }
}
