/**
 * MemoryModel: the memory of one GPU under a mapping: bf16 weights, fp32 gradients, the
 * distributed optimizer's state sharded over dp x cp (dense) and edp (experts), and the
 * activations the schedule keeps in flight, with a margin on expert activations for dropless
 * imbalance. The fuller of the first stage (most micro-batches in flight, the input embedding)
 * and the last (the logits) is the mapping's memory.
 *
 * Activations per layer and micro-batch (bytes per rank; T = micro-batch * seq / (cp * tp)
 * tokens, sequence parallelism on):
 * - attention: T h (10 + 4 g / n) (Korthikanti et al. with flash attention, no s^2 term); with
 *   multi-latent attention T (4h + 2 (qLora + kvLora + dr) + 4 n (dn + dr) + 4 n dv);
 * - MoE: T (4h + k margin (2h etp + 6F + 2h)): norm and router inputs, then per routed copy the
 *   expert input (etp-gathered), the SwiGLU input and output (2F + F wide), the expert output
 *   that the combine's weighting needs; selective recompute drops the SwiGLU output (2F);
 * - shared / dense MLP: T (2h + 6 F') likewise; full recompute keeps 2h T per layer plus one
 *   layer's full set.
 * The last stage also holds the multi-token prediction layers' activations and logits.
 * In flight on the first stage: min(M, pp) micro-batches of its layers, times
 * (1 + (pp - 1) / (pp vpp)) when interleaved (Megatron's interleaved-schedule memory).
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import * as ModelContext from "../model/ModelContext.js"
import { calibration as c } from "./Calibration.js"
import { type Job, type Mapping, type Memory, microBatches } from "./Job.js"
import * as ModelFlops from "./ModelFlops.js"
import * as RankParameters from "./RankParameters.js"
import * as StageLayers from "./StageLayers.js"

/**
 * Multi-latent attention's activation bytes per token (bf16, sequence-parallel share): the
 * norm's input and output (4h), the three latents, and every head's q and k (width dn + dr),
 * v and the attention's output (dv), twice each for the core and the products around it.
 */
const latentActivationBytes = (h: number, heads: number, s: LatentAttention.LatentSizes): number =>
  4 * h + 2 * (s.qLoraRank + s.kvLoraRank + s.qkPosEmbHeadDim) + 4 * heads * (s.qkHeadDim + s.qkPosEmbHeadDim) + 4 * heads * s.vHeadDim

/** Activation bytes of one layer (the average of MoE and dense layers) for one micro-batch. */
const layerActivations = (job: Job, map: Mapping): { kept: number; full: number } => {
  const m = job.model
  const h = m.hidden
  const tokens = (map.microBatch * job.seq) / (map.cp * map.tp)
  const attention = tokens * (m.mla === undefined ? h * (c.attentionActivationBytes + (4 * m.kvHeads) / m.heads) : latentActivationBytes(h, m.heads, m.mla))
  const swigluOut = map.recompute === "selective" ? 0 : 2
  // The routed rows' width (hidden, or a LatentMoE's latent, whose combined rows its out projection keeps).
  const x = ModelContext.expertWidthOf(m)
  const latent = m.moeLatentSize === undefined ? 0 : 2 * m.moeLatentSize
  // The busiest expert rank's share: a recorded routing's factor for this EP size, else the calibration's margin.
  const margin = job.expertLoad?.(map.ep) ?? c.droplessMargin
  const routed = tokens * (4 * h + latent + m.topk * margin * (2 * x * map.etp + (4 + swigluOut) * m.moeFfn + 2 * x))
  const shared = m.sharedExpertFfn === undefined ? 0 : tokens * (2 * h + (4 + swigluOut) * m.sharedExpertFfn)
  const dense = tokens * (2 * h + (4 + swigluOut) * m.ffn)
  const moeShare = ModelFlops.moeLayers(m) / m.layers
  const full = attention + moeShare * (routed + shared) + (1 - moeShare) * dense
  return { kept: map.recompute === "full" ? 2 * h * tokens : full, full }
}

/**
 * The memory of the fullest rank under `map`.
 * @category mapping
 */
export const ofMapping = (job: Job, map: Mapping): Memory => {
  const m = job.model
  const split = StageLayers.of(StageLayers.splitOf(m, map))
  const M = microBatches(job, map)
  const act = layerActivations(job, map)
  const interleave = map.vpp > 1 ? 1 + (map.pp - 1) / (map.pp * map.vpp) : 1
  const inFlight = Math.min(M, map.pp) * interleave
  // The layer being recomputed holds its full set while its backward runs.
  const recomputing = map.recompute === "full" ? act.full : 0
  // The logits of the output layer, and of each multi-token prediction layer's on the last stage.
  const mtp = ModelContext.mtpLayersOf(m)
  const logits = (6 * map.microBatch * job.seq * m.vocab) / (map.cp * map.tp)
  const stage = (edge: "first" | "middle" | "last", microBatchesInFlight: number, extra: number): Memory => {
    const params = RankParameters.ofRank(m, map, edge)
    // The last stage also runs the multi-token prediction layers.
    const layers = split[edge] + (edge === "last" || map.pp === 1 ? mtp : 0)
    const weights = c.weightBytes * (params.dense + params.expert)
    const gradients = c.gradientBytes * (params.dense + params.expert)
    const optimizer = c.optimizerBytes * RankParameters.optimizerShard(params, map, job.optimizerInstances)
    const activations = microBatchesInFlight * layers * act.kept + recomputing + extra
    const reserved = c.reservedGB * 1e9
    return { weights, gradients, optimizer, activations, reserved, total: weights + gradients + optimizer + activations + reserved }
  }
  const first = stage("first", inFlight, map.pp === 1 ? (1 + mtp) * logits : 0)
  if (map.pp === 1) return first
  const last = stage("last", 1, (1 + mtp) * logits)
  const fuller = last.total > first.total ? last : first
  if (map.pp === 2 || split.middle <= split.first) return fuller
  // An uneven split whose middle ranks hold more layers than the first: the second rank, one micro-batch fewer in flight.
  const middle = stage("middle", Math.min(M, map.pp - 1) * interleave, 0)
  return middle.total > fuller.total ? middle : fuller
}
