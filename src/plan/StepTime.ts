/**
 * StepTime: the time of one training step under a mapping, term by term (Job.Breakdown).
 *
 * One micro-batch's forward and backward on a stage (its layers, the output layer on the last
 * stage) is the sum of: GEMMs at a shape-dependent fraction of the peak (d / (d + half) per
 * dimension; expert GEMMs at the grouped GEMM's fraction, with the tokens one local expert sees);
 * causal flash attention (the share of its pairs a sliding window keeps, windowShare); elementwise kernels at a fraction of HBM bandwidth; a fixed time per
 * layer; and the communication that is not hidden: TP/SP all-gather and reduce-scatter (4 per
 * attention block and per dense or shared MLP), the CP ring beyond what attention hides, the EP
 * all-to-all (dispatch and combine, forward and backward) over NVLink and the network as the
 * group lies, ETP all-gather and reduce-scatter of the routed tokens, pipeline send/receive.
 * The step is (M + (pp - 1) / vpp) such micro-batches of the slowest stage (1F1B or interleaved
 * 1F1B: the bubble is (pp - 1) / (vpp M + pp - 1) of it), plus the distributed optimizer's
 * gradient reduce-scatter and parameter all-gather beyond what one micro-batch overlaps, plus the
 * optimizer step. With a recorded routing (Job.expertLoad), the routed experts' rows, traffic and
 * elementwise work are the busiest expert rank's: the mean's times its EP size's factor.
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import * as ModelContext from "../model/ModelContext.js"
import { calibration as c } from "./Calibration.js"
import type { Breakdown, Job, Mapping } from "./Job.js"
import { microBatches } from "./Job.js"
import * as Links from "./Links.js"
import * as ModelFlops from "./ModelFlops.js"
import type * as Placement from "./Placement.js"
import * as RankParameters from "./RankParameters.js"
import * as StageLayers from "./StageLayers.js"

/**
 * The placement of each family's groups under a mapping and order.
 * @category models
 */
export interface Spreads {
  readonly tp: Placement.Spread
  readonly cp: Placement.Spread
  readonly pp: Placement.Spread
  readonly ep: Placement.Spread
  readonly etp: Placement.Spread
  /** The dense gradients' group: dp x cp. */
  readonly dpCp: Placement.Spread
  readonly edp: Placement.Spread
  /** With the distributed optimizer's instances (Job.optimizerInstances > 1): each gradient group's slices. */
  readonly instances?: { readonly dpCp: Placement.Sliced; readonly edp: Placement.Sliced } | undefined
}

/** Fraction of the best GEMM efficiency a dimension of size d allows. */
const dimension = (d: number): number => d / (d + c.gemmHalfDimension)

/** Seconds of `count` GEMMs m x n x k (forward, or one of the two backward products). */
const gemm = (peak: number, m: number, n: number, k: number, fraction = 1): number =>
  (2 * m * n * k) / (peak * c.gemmPeakFraction * fraction * dimension(m) * dimension(n) * dimension(k))

/**
 * Multi-latent attention's forward GEMM seconds: the down projections on this rank's `tokens`
 * (replicated weights), the up projections and the output on the tp group's `rows`, heads over tp.
 */
const latentGemms = (
  s: LatentAttention.LatentSizes,
  heads: number,
  h: number,
  rows: number,
  tokens: number,
  tp: number,
  time: (m: number, n: number, k: number) => number,
): number => {
  const qk = s.qkHeadDim + s.qkPosEmbHeadDim
  const down = time(tokens, s.qLoraRank + s.kvLoraRank + s.qkPosEmbHeadDim, h)
  const queries = s.qLoraRank > 0 ? time(rows, (heads * qk) / tp, s.qLoraRank) : time(rows, (heads * qk) / tp, h)
  const keysValues = time(rows, (heads * (s.qkHeadDim + s.vHeadDim)) / tp, s.kvLoraRank)
  return down + queries + keysValues + time(rows, h, (heads * s.vHeadDim) / tp)
}

/** The per-micro-batch seconds of one stage, by term (forward plus backward). */
interface StageTime {
  gemm: number
  attention: number
  elementwise: number
  fixed: number
  recompute: number
  tp: number
  cp: number
  ep: number
  etp: number
  pp: number
}

const total = (t: StageTime): number => t.gemm + t.attention + t.elementwise + t.fixed + t.recompute + t.tp + t.cp + t.ep + t.etp + t.pp

/** One micro-batch through one stage; `last` adds the output layer and the loss. */
const stageTime = (job: Job, map: Mapping, s: Spreads, last: boolean): StageTime => {
  const m = job.model
  const cl = job.cluster
  const h = m.hidden
  const headDim = ModelContext.headDim(m)
  const queryWidth = m.heads * headDim // h, unless heads have a width of their own (--head-dim)
  const gemmPeak = (job.precision === "fp8" ? cl.fp8Tflops * c.fp8GemmRelative : cl.peakTflops) * 1e12
  const peak = cl.peakTflops * 1e12
  const hbm = cl.hbmGBps * 1e9 * c.hbmFraction
  // The stage's layers: the last rank's, or the most of the others' (equal unless the split is uneven).
  const split = StageLayers.of(StageLayers.splitOf(m, map))
  // The last stage also runs the multi-token prediction layers, each a layer and an output layer more.
  const mtp = ModelContext.mtpLayersOf(m)
  const layers = last ? split.last + mtp : Math.max(split.first, split.middle)
  const moeShare = ModelFlops.moeLayers(m) / m.layers
  const rows = (map.microBatch * job.seq) / map.cp // a TP group's tokens
  const tokens = rows / map.tp // one rank's sequence-parallel share
  const k = m.topk
  // Forward GEMM seconds of one layer; the backward is twice (dgrad and wgrad of the same shapes).
  const mlp = (width: number) => gemm(gemmPeak, rows, (2 * width) / map.tp, h) + gemm(gemmPeak, rows, h, width / map.tp)
  const attentionGemms =
    m.mla === undefined
      ? gemm(gemmPeak, rows, (queryWidth + 2 * m.kvHeads * headDim) / map.tp, h) + gemm(gemmPeak, rows, h, queryWidth / map.tp)
      : latentGemms(m.mla, m.heads, h, rows, tokens, map.tp, (mm, n, kk) => gemm(gemmPeak, mm, n, kk))
  // The busiest expert rank's routed rows over the mean's (a recorded routing's, ExpertLoad; 1: balanced).
  const load = job.expertLoad?.(map.ep) ?? 1
  const perExpert = Math.max(1, (map.etp * map.ep * tokens * k * load) / m.experts)
  const localExperts = m.experts / map.ep
  // The routed rows' width: hidden, or a LatentMoE's latent (its two projections on this rank's rows).
  const x = ModelContext.expertWidthOf(m)
  const experts =
    localExperts * (gemm(gemmPeak, perExpert, (2 * m.moeFfn) / map.etp, x, c.groupedGemmFraction) + gemm(gemmPeak, perExpert, x, m.moeFfn / map.etp, c.groupedGemmFraction))
  const latent = m.moeLatentSize === undefined ? 0 : gemm(gemmPeak, tokens, m.moeLatentSize, h) + gemm(gemmPeak, tokens, h, m.moeLatentSize)
  const router = gemm(peak, tokens, m.experts, h)
  const shared = m.sharedExpertFfn === undefined ? 0 : mlp(m.sharedExpertFfn)
  const forwardGemm = attentionGemms + moeShare * (experts + latent + router + shared) + (1 - moeShare) * mlp(m.ffn)
  const head = last ? (1 + mtp) * gemm(gemmPeak, rows, m.vocab / map.tp, h) : 0
  const chunk = job.seq / (2 * map.cp)
  const attentionForward =
    ((2 * map.microBatch * job.seq * job.seq * h) / (map.cp * map.tp) / (peak * c.attentionPeakFraction * (chunk / (chunk + c.attentionHalfLength)))) * windowedShare(m, job.seq)
  const elementwiseForward =
    tokens * h * c.attentionElementwiseBytes +
    moeShare * tokens * (8 * h + k * load * (8 * x + 6 * m.moeFfn) + 6 * (m.sharedExpertFfn ?? 0)) +
    (1 - moeShare) * tokens * (8 * h + 6 * m.ffn)
  const lossElementwise = last ? ((1 + mtp) * 12 * rows * m.vocab) / map.tp : 0
  // Full recomputation runs each layer's forward again, its communication included (a quarter
  // of the layer's TP, ETP and all-to-all traffic, a third of the CP ring's).
  const recomputeCompute =
    map.recompute === "full" ? forwardGemm + attentionForward + elementwiseForward / hbm : map.recompute === "selective" ? (tokens * k * load * 6 * m.moeFfn * moeShare) / hbm : 0

  // Communication of one layer, forward and backward.
  const activation = rows * h * 2 // a TP group's bf16 activations
  const tpPerBlock = 4 * Links.ring(cl, s.tp, activation) * c.tpExposedFraction
  const tpBlocks = 1 + moeShare * (m.sharedExpertFfn === undefined ? 0 : 1) + (1 - moeShare)
  // K and V of the cp chunk (bf16): grouped-query's kv heads, or every head's under multi-latent attention.
  const kvWidth = m.mla === undefined ? 2 * m.kvHeads * headDim : m.heads * (m.mla.qkHeadDim + m.mla.qkPosEmbHeadDim + m.mla.vHeadDim)
  const kvBytes = (tokens * map.tp * kvWidth * 2) / map.tp
  const cpRing = map.cp > 1 ? 3 * (map.cp - 1) * Links.sendReceive(cl, s.cp, kvBytes) : 0
  const cpExposed = Math.max(0, cpRing - c.cpOverlapFraction * attentionForward * (1 + c.attentionBackwardRatio)) + 3 * (map.cp - 1) * c.cpStepSeconds
  const routedBytes = tokens * k * load * x * 2
  const ep = moeShare * 4 * Links.allToAll(cl, s.ep, routedBytes)
  const etp = moeShare * 4 * Links.ring(cl, s.etp, routedBytes * map.etp)
  const ppTransfers = map.pp > 1 ? 2 * map.vpp * Links.sendReceive(cl, s.pp, tokens * h * 2) * c.p2pExposedFraction : 0
  const recomputeCommunication = map.recompute === "full" ? (tpBlocks * tpPerBlock + ep + etp) / 4 + cpExposed / 3 : 0
  return {
    gemm: 3 * (layers * forwardGemm + head),
    attention: layers * attentionForward * (1 + c.attentionBackwardRatio),
    elementwise: (3 * (layers * elementwiseForward + lossElementwise)) / hbm,
    fixed: layers * (c.layerFixedSeconds + moeShare * c.moeFixedSeconds),
    recompute: layers * (recomputeCompute + recomputeCommunication),
    tp: layers * tpBlocks * tpPerBlock,
    cp: layers * cpExposed,
    ep: layers * ep,
    etp: layers * etp,
    pp: ppTransfers,
  }
}

/**
 * The part of a distributed-optimizer collective of `traffic` seconds that no compute hides,
 * given `pass` seconds of one micro-batch's backward (or forward) through the stage. Megatron
 * starts each virtual stage's gradient reduce-scatter when that chunk's last backward is done
 * (and gathers each chunk's parameters before its first forward): with vpp chunks, chunk k
 * (counted from the one that finishes first) has k pp + 1 chunk-passes of its rank's compute
 * and half the bubble after it, and the traffic of chunks 0..k to move by then. With one chunk
 * this is the traffic beyond the last micro-batch's pass and half the bubble.
 */
const exposedSync = (map: Mapping, traffic: number, pass: number, bubble: number): number => {
  let exposed = 0
  for (let k = 0; k < map.vpp; k++) {
    const moved = ((k + 1) * traffic) / map.vpp
    const hidden = c.dpOverlapFraction * (((k * map.pp + 1) * pass) / map.vpp + bubble / 2)
    exposed = Math.max(exposed, moved - hidden)
  }
  return exposed
}

/**
 * The step's seconds by term under `map`.
 * @category mapping
 */
export const ofMapping = (job: Job, map: Mapping, spreads: Spreads): Breakdown => {
  const middle = stageTime(job, map, spreads, map.pp === 1)
  const last = map.pp === 1 ? middle : stageTime(job, map, spreads, true)
  const slowest = total(last) > total(middle) ? last : middle
  const M = microBatches(job, map)
  const perMicroBatch = total(slowest)
  const bubble = ((map.pp - 1) / map.vpp) * perMicroBatch
  // Distributed optimizer: fp32 gradients reduce-scattered, bf16 parameters all-gathered; the
  // last (first) micro-batch's backward (forward) and the cool-down (warm-up) hide part of each
  // (exposedSync: with virtual stages each chunk's share starts as soon as that chunk is done).
  const params = RankParameters.ofRank(job.model, map, map.pp === 1 ? "middle" : "last")
  const cl = job.cluster
  // With instances (hybrid sharding) the gradients reduce-scatter within a slice, then its part
  // is all-reduced (a reduce-scatter and an all-gather) across the slices; parameters gather within a slice.
  const reduce = (whole: Placement.Spread, slices: Placement.Sliced | undefined, bytes: number) =>
    slices === undefined ? Links.ring(cl, whole, bytes) : Links.ring(cl, slices.intra, bytes) + 2 * Links.ring(cl, slices.inter, bytes / slices.intra.size)
  const sliced = spreads.instances
  const gradients = reduce(spreads.dpCp, sliced?.dpCp, params.dense * 4) + reduce(spreads.edp, sliced?.edp, params.expert * 4)
  const parameters = Links.ring(cl, sliced?.dpCp.intra ?? spreads.dpCp, params.dense * 2) + Links.ring(cl, sliced?.edp.intra ?? spreads.edp, params.expert * 2)
  const dp = exposedSync(map, gradients, (2 / 3) * perMicroBatch, bubble) + exposedSync(map, parameters, (1 / 3) * perMicroBatch, bubble)
  const shards = RankParameters.optimizerShard(params, map, job.optimizerInstances)
  const optimizer = (shards * c.optimizerBytesPerParameter) / (cl.hbmGBps * 1e9 * c.hbmFraction)
  return {
    gemm: M * slowest.gemm,
    attention: M * slowest.attention,
    elementwise: M * slowest.elementwise,
    fixed: M * slowest.fixed,
    recompute: M * slowest.recompute,
    tp: M * slowest.tp,
    cp: M * slowest.cp,
    ep: M * slowest.ep,
    etp: M * slowest.etp,
    pp: M * slowest.pp,
    bubble,
    dp,
    optimizer,
  }
}

/**
 * The step's seconds: the sum of its terms.
 * @category mapping
 */
export const seconds = (b: Breakdown): number => b.gemm + b.attention + b.elementwise + b.fixed + b.recompute + b.tp + b.cp + b.ep + b.etp + b.pp + b.bubble + b.dp + b.optimizer

/**
 * The share of causal attention's (query, key) pairs a sliding window of `window` tokens keeps in
 * a sequence of `seq`: (W (W + 1) / 2 + (S - W) W) / (S (S + 1) / 2), 1 without a window or with one
 * at least as long as the sequence. The core's time scales with it (the kernels skip the blocks
 * outside the window); the model FLOPs of MFU do not (Megatron's formula counts causal attention).
 */
const windowShare = (seq: number, window: number | undefined): number => {
  if (window === undefined || window >= seq) return 1
  return ((window * (window + 1)) / 2 + (seq - window) * window) / ((seq * (seq + 1)) / 2)
}

/** The mean over the model's layers of the causal pairs each layer's window keeps (ModelContext.windowOf). */
const windowedShare = (m: Parameters<typeof ModelContext.windowOf>[0], seq: number): number => {
  let sum = 0
  for (let layer = 0; layer < m.layers; layer++) sum += windowShare(seq, ModelContext.windowOf(m, layer))
  return sum / m.layers
}
