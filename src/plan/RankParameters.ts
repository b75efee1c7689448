/**
 * RankParameters: how many parameters one rank of a pipeline stage holds, split into those its
 * data-parallel group shares (attention, router, dense and shared MLPs, embeddings: sharded
 * over tp, reduced over dp x cp) and the experts' (sharded over ep x etp, reduced over edp).
 */
import type * as ModelConfig from "../train/ModelConfig.js"
import type { Mapping } from "./Job.js"
import * as ModelFlops from "./ModelFlops.js"

/**
 * Parameters of one rank.
 * @category models
 */
export interface RankParameters {
  readonly dense: number
  readonly expert: number
}

/**
 * Per-layer parameter counts of the whole model (before any sharding).
 * @category mapping
 */
const perLayer = (m: ModelConfig.ModelConfig) => {
  const h = m.hidden
  const headDim = h / m.heads
  const shared = m.sharedExpertFfn === undefined ? 0 : 3 * h * m.sharedExpertFfn + (m.sharedExpertGate === true ? h : 0)
  return {
    attention: h * (h + 2 * m.kvHeads * headDim) + h * h,
    norms: 2 * h,
    router: h * m.experts,
    experts: m.experts * 3 * h * m.moeFfn,
    shared,
    denseMlp: 3 * h * m.ffn,
  }
}

/**
 * The parameters of a rank on the first (`edge` "first") or last pipeline stage, or a middle one.
 * With pp = 1 the one stage holds both embeddings.
 * @category mapping
 */
export const ofRank = (m: ModelConfig.ModelConfig, map: Mapping, edge: "first" | "last" | "middle"): RankParameters => {
  const p = perLayer(m)
  const layers = m.layers / map.pp
  const moeShare = ModelFlops.moeLayers(m) / m.layers
  const perLayerDense = p.attention / map.tp + p.norms + moeShare * (p.router + p.shared / map.tp) + (1 - moeShare) * (p.denseMlp / map.tp)
  const table = (m.vocab * m.hidden) / map.tp
  // Untied: the input table on the first stage, the output layer on the last. Tied: Megatron
  // keeps a copy on both ends (kept in sync by an all-reduce), so the count is the same.
  const tables = map.pp === 1 ? (m.untieEmbeddings === true ? 2 : 1) : edge === "middle" ? 0 : 1
  return {
    dense: layers * perLayerDense + tables * table,
    expert: (layers * moeShare * p.experts) / (map.ep * map.etp),
  }
}
