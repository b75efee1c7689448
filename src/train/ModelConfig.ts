/**
 * ModelConfig: the Mixtral-like model pleat trains, and the checks that make a model fit a
 * parallel mapping before any work starts.
 *
 * Embedding -> layers (attention, then MoE every `moeEvery`-th layer from layer `denseFirst`
 * (0 by default), else a dense SwiGLU MLP) -> final RMSNorm -> output layer -> cross-entropy. Vocabulary split over tp.
 * The MoE layers route as `moe` says (MoeSettings: score function, groups, losses, dropping).
 */
import * as Result from "effect/Result"
import * as LatentAttention from "../attention/LatentAttention.js"
import * as ConfigError from "../errors/ConfigError.js"
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as ModelContext from "../model/ModelContext.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as SelfBalancing from "../moe/SelfBalancing.js"
import * as Partition from "../pipeline/Partition.js"
import * as Plan from "../pipeline/Plan.js"
import * as RopeScaling from "../tensor/ops/RopeScaling.js"

/**
 * The model's sizes.
 * @category models
 */
export interface ModelConfig extends ModelContext.Sizes {
  /** Dense MLP width. */
  readonly ffn: number
  /** Expert MLP width. */
  readonly moeFfn: number
}

/**
 * The training batch.
 * @category models
 */
export interface BatchConfig {
  readonly microBatch: number
  readonly globalBatch: number
}

/**
 * The default model: small, Mixtral-like (8 experts, top-2), sized to train in about a minute
 * on 2 cores.
 * @category constructors
 */
export const small: ModelConfig = { vocab: 32, hidden: 32, layers: 4, heads: 4, kvHeads: 2, ffn: 64, experts: 8, topk: 2, moeFfn: 32, moeEvery: 1, seq: 16 }

/**
 * Micro-batches per step on each data-parallel rank.
 * @category mapping
 */
export const microBatches = (b: BatchConfig, dp: number): number => b.globalBatch / (b.microBatch * dp)

/** The flag of a field (moeFfn -> moe-ffn). */
const kebab = (field: string): string => field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

/**
 * What keeps a model and batch from fitting a mapping: the field, its value, why and the fix.
 * @category models
 */
export interface Problem {
  readonly field: string
  readonly value: unknown
  readonly reason: string
  readonly fix: string
}

const fault = (field: string, value: unknown, reason: string, fix: string): Problem => ({ field, value, reason, fix })

/** The problem of a setting that must be a positive integer (`fix` tells which), or undefined. */
const notPositive = (field: string, value: number, fix: string): Problem | undefined =>
  Number.isSafeInteger(value) && value >= 1 ? undefined : fault(field, value, "is not a positive integer", fix)

/**
 * The first problem that keeps the model and batch from fitting the mapping, or undefined; no
 * error is built, so searches over many mappings (pleat plan) stay fast. Router options are
 * checked by `check` (MoeSettings.check).
 * @category guards
 */
export const problemOf = (m: ModelConfig, b: BatchConfig, p: ParallelConfig.ParallelConfig): Problem | undefined => {
  const s = p.sizes
  for (const [field, v] of Object.entries({
    vocab: m.vocab,
    hidden: m.hidden,
    layers: m.layers,
    heads: m.heads,
    kvHeads: m.kvHeads,
    ffn: m.ffn,
    experts: m.experts,
    topk: m.topk,
    moeFfn: m.moeFfn,
    moeEvery: m.moeEvery,
    seq: m.seq,
    "micro-batch": b.microBatch,
    "global-batch": b.globalBatch,
  })) {
    const problem = notPositive(field, v, `pass --${kebab(field)} N with N = 1, 2, 3, ...`)
    if (problem !== undefined) return problem
  }
  const partition = Partition.validate(Partition.inputOf(m.layers, p))
  if (Result.isFailure(partition)) return partition.failure
  if (m.mla !== undefined) {
    const problem = latentProblem(m, s.tp)
    if (problem !== undefined) return problem
  } else if (m.headDim === undefined && m.hidden % m.heads !== 0)
    return fault("hidden", m.hidden, `is not divisible by heads = ${m.heads}`, "use a hidden size that is a multiple of the head count, or give --head-dim")
  if (m.heads % s.tp !== 0) return fault("heads", m.heads, `is not divisible by tp = ${s.tp}`, `use a multiple of ${s.tp} heads, or a smaller --tp`)
  if (m.kvHeads % s.tp !== 0 || m.heads % m.kvHeads !== 0)
    return fault("kvHeads", m.kvHeads, `must divide heads = ${m.heads} and be divisible by tp = ${s.tp}`, "pick a kv head count between tp and heads that divides heads")
  if (m.vocab % s.tp !== 0) return fault("vocab", m.vocab, `is not divisible by tp = ${s.tp}`, `use a vocabulary that is a multiple of ${s.tp}`)
  if (m.rotaryPercent !== undefined) {
    const r = m.rotaryPercent
    if (!(r > 0 && r <= 1)) return fault("rotaryPercent", r, "is not a share in (0, 1] of each head's width", "pass --rotary-percent F with 0 < F <= 1 (GLM-4.5's 0.5)")
    const turned = ModelContext.rotaryDim(m)
    if (turned < 2 || turned % 2 !== 0)
      return fault(
        "rotaryPercent",
        r,
        `turns ${turned} of each head's ${ModelContext.headDim(m)} dimensions, and RoPE turns pairs`,
        "choose a share whose part of the head width is even and at least 2",
      )
    if (m.mla !== undefined && r !== 1)
      return fault("rotaryPercent", r, "has no effect with multi-latent attention, whose RoPE part is its own width", "give --qk-pos-emb-head-dim, or drop --rotary-percent")
  }
  if (m.qkNormOverHeads === true && m.qkNorm !== true)
    return fault("qkNormOverHeads", true, "says how --qk-norm normalizes q and k, and there is no --qk-norm", "add --qk-norm, or drop --qk-norm-over-heads")
  if (m.qkNorm === true && m.qkL2Norm === true) return fault("qkL2Norm", true, "and --qk-norm both normalize each head's q and k", "keep one of --qk-norm and --qk-l2-norm")
  if (m.headDim !== undefined && (!Number.isSafeInteger(m.headDim) || m.headDim < 2 || m.headDim % 2 !== 0))
    return fault("headDim", m.headDim, "is not an even number of 2 or more (RoPE turns pairs of a head's dimensions)", "pass --head-dim N with N = 2, 4, 6, ...")
  if (m.mla === undefined && m.headDim === undefined && (m.hidden / m.heads) % 2 !== 0)
    return fault(
      "hidden",
      m.hidden,
      `gives heads of an odd width hidden / heads = ${m.hidden / m.heads} (RoPE turns pairs of a head's dimensions)`,
      "use a hidden size whose heads are of an even width, or give --head-dim",
    )
  if (m.ffn % s.tp !== 0) return fault("ffn", m.ffn, `is not divisible by tp = ${s.tp}`, `use a dense MLP width (--ffn) that is a multiple of ${s.tp}, or a smaller --tp`)
  if (m.seq % (2 * s.cp) !== 0 && s.cp > 1) return fault("seq", m.seq, `is not divisible by 2*cp = ${2 * s.cp}`, `use a sequence length that is a multiple of ${2 * s.cp}`)
  if (((m.seq / s.cp) * b.microBatch) % s.tp !== 0)
    return fault(
      "seq",
      m.seq,
      `gives ${(m.seq / s.cp) * b.microBatch} tokens per cp rank and micro-batch, not divisible by tp = ${s.tp} (sequence parallelism)`,
      `use a sequence length (or micro-batch) so that seq/cp*micro-batch is a multiple of ${s.tp}`,
    )
  if (m.experts % s.ep !== 0) return fault("experts", m.experts, `is not divisible by ep = ${s.ep}`, `use a multiple of ${s.ep} experts, or a smaller --ep`)
  if (m.topk > m.experts) return fault("topk", m.topk, `is larger than experts = ${m.experts}`, "route each token to at most all experts")
  if (m.sharedExpertFfn !== undefined) {
    const problem = notPositive("sharedExpertFfn", m.sharedExpertFfn, "pass --shared-expert-ffn N with N = 1, 2, 3, ...")
    if (problem !== undefined) return problem
    if (m.sharedExpertFfn % s.tp !== 0)
      return fault("sharedExpertFfn", m.sharedExpertFfn, `is not divisible by tp = ${s.tp}`, `use a shared-expert width that is a multiple of ${s.tp}, or a smaller --tp`)
  }
  if (m.moeLatentSize !== undefined) {
    const problem = notPositive(
      "moeLatentSize",
      m.moeLatentSize,
      "pass --moe-latent-size N with N = 1, 2, 3, ... (the routed experts' width; Nemotron 3 Super's 1024 at hidden 4096)",
    )
    if (problem !== undefined) return problem
  }
  if (m.denseFirst !== undefined) {
    if (!Number.isSafeInteger(m.denseFirst) || m.denseFirst < 0)
      return fault("denseFirst", m.denseFirst, "is not a non-negative integer", "pass --dense-first N with N = 0, 1, 2, ... (the first N layers dense)")
    if (m.denseFirst >= m.layers) return fault("denseFirst", m.denseFirst, `leaves no MoE layer among ${m.layers} layers`, `use a --dense-first below --layers ${m.layers}`)
  }
  if (m.ropeTheta !== undefined && !(m.ropeTheta > 0 && Number.isFinite(m.ropeTheta)))
    return fault("ropeTheta", m.ropeTheta, "is not a number above 0", "pass --rope-theta F with F > 0 (10000 by default; Mixtral and Qwen2 use 1000000, Llama 3 500000)")
  if (m.ropeScaling !== undefined) {
    const problem = scalingProblem(m.ropeScaling)
    if (problem !== undefined) return problem
  }
  if (m.mtpLayers !== undefined) {
    const problem = mtpProblem(m)
    if (problem !== undefined) return problem
  }
  if (m.windowAttnSkipFreq !== undefined) {
    const problem = notPositive("windowAttnSkipFreq", m.windowAttnSkipFreq, "pass --window-attn-skip-freq N with N = 1, 2, 3, ... (every N-th layer without the window)")
    if (problem !== undefined) return problem
    if (m.slidingWindow === undefined)
      return fault(
        "windowAttnSkipFreq",
        m.windowAttnSkipFreq,
        "picks the layers that skip the sliding window, and this model has none",
        "add --sliding-window N, or drop --window-attn-skip-freq",
      )
  }
  if (m.noRopeFreq !== undefined) {
    const problem = notPositive("noRopeFreq", m.noRopeFreq, "pass --no-rope-freq N with N = 1, 2, 3, ... (every N-th layer without RoPE)")
    if (problem !== undefined) return problem
    if (m.mla !== undefined) return fault("noRopeFreq", m.noRopeFreq, "is not built for multi-latent attention, whose RoPE part is its own", "drop --no-rope-freq")
  }
  if (m.normEps !== undefined && !(m.normEps > 0 && m.normEps < 1))
    return fault("normEps", m.normEps, "is not a number between 0 and 1", "pass --norm-eps F with 0 < F < 1 (1e-6 by default; Mixtral and Llama use 1e-5)")
  if (m.sharedExpertGate === true && m.sharedExpertFfn === undefined)
    return fault("sharedExpertGate", true, "has no shared MLP to gate", "add --shared-expert-ffn N, or drop --shared-expert-gate")
  if (m.moeFfn % s.etp !== 0)
    return fault("moeFfn", m.moeFfn, `is not divisible by etp = ${s.etp}`, `use an expert width (--moe-ffn) that is a multiple of ${s.etp}, or a smaller --etp`)
  if (b.globalBatch % (b.microBatch * s.dp) !== 0)
    return fault("global-batch", b.globalBatch, `is not divisible by micro-batch*dp = ${b.microBatch}*${s.dp}`, `use a multiple of ${b.microBatch * s.dp}`)
  return interleavingProblem(b, s.pp, s.dp, p.vpp)
}

/**
 * What keeps the interleaved schedule (vpp) from running the step's micro-batches (Plan's two
 * conditions), said of --global-batch with the nearest global batches it can run.
 */
const interleavingProblem = (b: BatchConfig, pp: number, dp: number, vpp: number | undefined): Problem | undefined => {
  if (vpp === undefined) return undefined
  const runs = (m: number) => Result.isSuccess(Plan.validate({ pp, vpp, microBatches: m }))
  const m = microBatches(b, dp)
  const plan = Plan.validate({ pp, vpp, microBatches: m })
  if (Result.isSuccess(plan)) return undefined
  // Every multiple of pp runs, so both searches end.
  let below = m - 1
  while (below > 0 && !runs(below)) below--
  let above = m + 1
  while (!runs(above)) above++
  const perMicroBatches = b.microBatch * dp
  const choices = [below, above].filter((n) => n > 0).map((n) => `--global-batch ${n * perMicroBatches}`)
  return fault(
    "global-batch",
    b.globalBatch,
    `makes ${m} micro-batch${m === 1 ? "" : "es"} a step (global batch / (micro-batch x dp) = ${b.globalBatch} / (${b.microBatch} x ${dp})), which the interleaved schedule of --vpp ${vpp} cannot run: ${plan.failure.field} ${m} ${plan.failure.reason}`,
    `use ${choices.join(" or ")}, or leave out --vpp`,
  )
}

/** What keeps multi-token prediction from fitting (problemOf). */
const mtpProblem = (m: ModelConfig): Problem | undefined => {
  const d = m.mtpLayers as number
  const count = notPositive("mtpNumLayers", d, "pass --mtp-num-layers N with N = 1, 2, ... (DeepSeek-V3's 1)")
  if (count !== undefined) return count
  if (d >= m.seq) return fault("mtpNumLayers", d, `leaves no token to predict in sequences of ${m.seq}`, `use fewer MTP layers than --seq ${m.seq}`)
  const scale = m.mtpLossScale
  if (scale !== undefined && !(scale >= 0 && Number.isFinite(scale)))
    return fault("mtpLossScalingFactor", scale, "is not a number of 0 or more", "pass --mtp-loss-scaling-factor F with F >= 0 (0.1 by default)")
  return undefined
}

/** What keeps YaRN's setting from being one (problemOf); fields named as their flags' (Megatron's). */
const scalingProblem = (y: RopeScaling.Scaling): Problem | undefined => {
  if (RopeScaling.isLlama3(y)) return llama3Problem(y)
  if (RopeScaling.isLinear(y))
    return y.factor > 0 && Number.isFinite(y.factor)
      ? undefined
      : fault("rotaryScalingFactor", y.factor, "is not a number above 0", "pass --rotary-scaling-factor F with F > 0: positions are divided by F (Megatron's interpolation factor)")
  if (!(y.factor >= 1 && Number.isFinite(y.factor)))
    return fault("rotaryScalingFactor", y.factor, "is not a number of 1 or more", "pass --rotary-scaling-factor F with F >= 1 (DeepSeek-V3's 40)")
  const original = notPositive("originalMaxPositionEmbeddings", y.originalMaxPositions, "pass --original-max-position-embeddings N, the pretraining length (DeepSeek-V3's 4096)")
  if (original !== undefined) return original
  for (const [field, v] of [
    ["betaFast", y.betaFast],
    ["betaSlow", y.betaSlow],
  ] as const)
    if (!(v > 0 && Number.isFinite(v))) return fault(field, v, "is not a number above 0", `pass --${kebab(field)} F with F > 0 (32 and 1 by default)`)
  for (const [field, v] of [
    ["mscale", y.mscale],
    ["mscaleAllDim", y.mscaleAllDim],
  ] as const)
    if (!(v >= 0 && Number.isFinite(v))) return fault(field, v, "is not a number of 0 or more", `pass --${kebab(field)} F with F >= 0`)
  return undefined
}

/** The first of Llama 3's settings that is not one (a factor of 1 or more, 0 < low < high frequency factors, the length). */
const llama3Problem = (l: RopeScaling.Llama3): Problem | undefined => {
  if (!(l.factor >= 1 && Number.isFinite(l.factor)))
    return fault("rotaryScalingFactor", l.factor, "is not a number of 1 or more", "pass --rotary-scaling-factor F with F >= 1 (Llama 3.1's 8)")
  const original = notPositive("originalMaxPositionEmbeddings", l.originalMaxPositions, "pass --original-max-position-embeddings N, the pretraining length (Llama 3.1's 8192)")
  if (original !== undefined) return original
  if (!(l.lowFreqFactor > 0 && Number.isFinite(l.lowFreqFactor)))
    return fault("lowFreqFactor", l.lowFreqFactor, "is not a number above 0", "pass --low-freq-factor F with F > 0 (1 by default)")
  if (!(l.highFreqFactor > l.lowFreqFactor && Number.isFinite(l.highFreqFactor)))
    return fault(
      "highFreqFactor",
      l.highFreqFactor,
      `is not a number above the low frequency factor ${l.lowFreqFactor}`,
      "pass --high-freq-factor F above --low-freq-factor (4 by default)",
    )
  return undefined
}

/** What keeps multi-latent attention's widths and options from fitting (problemOf). */
const latentProblem = (m: ModelConfig, tp: number): Problem | undefined => {
  const mla = m.mla as LatentAttention.LatentSizes
  const problem = LatentAttention.problemOf(mla)
  if (problem !== undefined) return problem
  if (m.kvHeads !== m.heads)
    return fault("kvHeads", m.kvHeads, `differs from heads = ${m.heads}: multi-latent attention gives every head its own keys and values`, "drop --kv-heads (or set it to --heads)")
  if (m.qkNorm === true) return fault("qkNorm", true, "has no per-head q and k to normalize in multi-latent attention (its latents have norms of their own)", "drop --qk-norm")
  if (m.qkL2Norm === true)
    return fault("qkL2Norm", true, "has no per-head q and k to normalize in multi-latent attention (its latents have norms of their own)", "drop --qk-l2-norm")
  if (m.linearBias === true) return fault("linearBias", true, "is not built for multi-latent attention's projections", "drop --add-bias-linear")
  if (m.qkvBias === true) return fault("qkvBias", true, "has no q, k and v projections to bias in multi-latent attention", "drop --qkv-bias")
  if (m.heads % tp !== 0) return fault("heads", m.heads, `is not divisible by tp = ${tp}`, `use a multiple of ${tp} heads, or a smaller --tp`)
  return undefined
}

/**
 * Checks that the model and batch fit the mapping; every error names the field and the fix.
 * Sequence parallelism is on whenever tp > 1 (MoE with tp > 1 needs it, semantics.md 2.4.4).
 * @category guards
 */
export const check = (m: ModelConfig, b: BatchConfig, p: ParallelConfig.ParallelConfig): void => {
  const problem = problemOf(m, b, p)
  if (problem !== undefined) throw ConfigError.make(problem.field, problem.value, problem.reason, problem.fix)
  if (m.moe !== undefined) MoeSettings.check(m.moe, m.experts, m.topk)
  const tokens = m.moe === undefined ? undefined : SelfBalancing.tokensProblem(m.moe, m.experts, m.topk, b.microBatch * m.seq)
  if (tokens !== undefined) throw tokens
}
