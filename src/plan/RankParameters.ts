/**
 * RankParameters: how many parameters one rank of a pipeline stage holds, split into those its
 * data-parallel group shares (attention, router, dense and shared MLPs, norms, embeddings:
 * sharded over tp or replicated, reduced over dp x cp) and the experts' (sharded over
 * ep x etp, reduced over edp). Counted from the model's own parameter list (Params.specs, what
 * training allocates), by each parameter's layer and sharding, over the layers the stage's pp
 * rank holds (StageLayers.ranges: the split training runs, uneven or interleaved), so dense
 * layers (denseFirst, moeEvery) count on the ranks that hold them.
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

/** The model's parameters by part: each layer's, the first stage's extras (layer -1), the last's (layer L). */
interface Totals {
  readonly layers: ReadonlyArray<Part>
  /** Sums of `layers` over a pp rank's layers, by the split's key and the rank. */
  readonly held: Map<string, Part>
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
  const t = { layers: Array.from({ length: m.layers }, part), held: new Map<string, Part>(), first: part(), last: part(), tiedCopy: 0 }
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
    else add(t.layers[spec.layer] as Part)
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
  const split = StageLayers.splitOf(m, map)
  // The pp rank: the first, the last, or the second (a middle one, where there is one).
  const rank = edge === "first" || map.pp === 1 ? 0 : edge === "last" ? map.pp - 1 : Math.min(1, map.pp - 1)
  const key = `${map.pp},${map.vpp},${map.firstStageLayers},${map.lastStageLayers},${rank}`
  let layers = t.held.get(key)
  if (layers === undefined) {
    const sum: Part = { sharded: 0, replicated: 0, expert: 0 }
    for (const r of StageLayers.ranges(split, rank))
      for (let l = r.start; l < r.end; l++) {
        const p = t.layers[l] as Part
        sum.sharded += p.sharded
        sum.replicated += p.replicated
        sum.expert += p.expert
      }
    t.held.set(key, sum)
    layers = sum
  }
  const dense = (p: Part) => p.sharded / map.tp + p.replicated
  const ends = map.pp === 1 ? dense(t.first) + dense(t.last) - t.tiedCopy / map.tp : edge === "first" ? dense(t.first) : edge === "last" ? dense(t.last) : 0
  return { dense: dense(layers) + ends, expert: layers.expert / (map.ep * map.etp) }
}

/**
 * The parameters whose optimizer state a rank keeps: its dense ones sharded over dp x cp and its
 * experts' over edp, each group's shard `instances` times larger with the distributed optimizer's
 * instances (Job.optimizerInstances, which divides both groups).
 * @category mapping
 */
export const optimizerShard = (params: RankParameters, map: Mapping, instances = 1): number =>
  (params.dense * instances) / (map.dp * map.cp) + (params.expert * instances) / map.edp
