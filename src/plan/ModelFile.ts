/**
 * ModelFile: a model for `pleat plan` written as JSON, for models that are not presets.
 *
 * Keys are ModelConfig's: hidden, layers, heads, experts, topk, moeFfn and vocab are required;
 * kvHeads defaults to heads, moeEvery to 1 (every layer MoE), denseFirst to 0, headDim to hidden / heads, ffn (the dense layers' MLP) to
 * moeFfn, seq to none (then --seq is required); sharedExpertFfn, sharedExpertGate, moeLatentSize,
 * untieEmbeddings and mla (multi-latent attention's widths: kvLoraRank, qkHeadDim, qkPosEmbHeadDim,
 * vHeadDim, and qLoraRank, absent for none; kvHeads then defaults to heads as it must be) and
 * mtpLayers (multi-token prediction layers, on the last stage), slidingWindow (every layer's
 * attention window, in tokens), windowAttnSkipFreq (every N-th layer without it) and softmaxType
 * (vanilla, off-by-one or learnable sinks: no time of their own), qkvBias, linearBias and
 * routerBias (the biases: their parameters and memory) are optional; `name` names it in the output (else the file's name).
 * Unknown keys are errors, so a misspelt key is never silently ignored.
 */
import * as Schema from "effect/Schema"
import * as ModelContext from "../model/ModelContext.js"
import type * as ModelConfig from "../train/ModelConfig.js"

const Count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(2 ** 40))

/**
 * The Schema of a model file.
 * @category models
 */
export const ModelFile = Schema.Struct({
  name: Schema.optionalKey(Schema.String),
  vocab: Count,
  hidden: Count,
  layers: Count,
  heads: Count,
  kvHeads: Schema.optionalKey(Count),
  ffn: Schema.optionalKey(Count),
  experts: Count,
  topk: Count,
  moeFfn: Count,
  moeEvery: Schema.optionalKey(Count),
  headDim: Schema.optionalKey(Count),
  denseFirst: Schema.optionalKey(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(2 ** 40))),
  seq: Schema.optionalKey(Count),
  sharedExpertFfn: Schema.optionalKey(Count),
  sharedExpertGate: Schema.optionalKey(Schema.Boolean),
  /** A LatentMoE's latent width (ModelConfig.moeLatentSize): the routed experts' width, and two projections. */
  moeLatentSize: Schema.optionalKey(Count),
  untieEmbeddings: Schema.optionalKey(Schema.Boolean),
  /** Multi-token prediction layers (on the last stage). */
  mtpLayers: Schema.optionalKey(Count),
  /** Every layer's attention window in tokens (ModelConfig.slidingWindow); absent: the whole context. */
  slidingWindow: Schema.optionalKey(Count),
  /** With slidingWindow: every N-th layer attends to its whole context (ModelConfig.windowAttnSkipFreq). */
  windowAttnSkipFreq: Schema.optionalKey(Count),
  /** The attention softmax (ModelConfig.softmaxType): its sinks change no time the planner counts. */
  softmaxType: Schema.optionalKey(Schema.Literals(ModelContext.softmaxTypes)),
  /** The biases (ModelConfig's qkvBias, linearBias, routerBias): parameters the memory counts. */
  qkvBias: Schema.optionalKey(Schema.Boolean),
  linearBias: Schema.optionalKey(Schema.Boolean),
  routerBias: Schema.optionalKey(Schema.Boolean),
  /** Multi-latent attention's widths (LatentAttention.LatentSizes; qLoraRank absent or 0: no query latent). */
  mla: Schema.optionalKey(
    Schema.Struct({
      qLoraRank: Schema.optionalKey(Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(2 ** 40))),
      kvLoraRank: Count,
      qkHeadDim: Count,
      qkPosEmbHeadDim: Count,
      vHeadDim: Count,
    }),
  ),
})

/**
 * A decoded model file as a model (its sequence 0 when the file gives none) and its name.
 * @category constructors
 */
export const toModel = (file: typeof ModelFile.Type, fallbackName: string): { readonly name: string; readonly model: ModelConfig.ModelConfig } => ({
  name: file.name ?? fallbackName,
  model: {
    vocab: file.vocab,
    hidden: file.hidden,
    layers: file.layers,
    heads: file.heads,
    kvHeads: file.kvHeads ?? file.heads,
    ffn: file.ffn ?? file.moeFfn,
    experts: file.experts,
    topk: file.topk,
    moeFfn: file.moeFfn,
    moeEvery: file.moeEvery ?? 1,
    ...(file.denseFirst === undefined ? {} : { denseFirst: file.denseFirst }),
    ...(file.headDim === undefined ? {} : { headDim: file.headDim }),
    seq: file.seq ?? 0,
    ...(file.sharedExpertFfn === undefined ? {} : { sharedExpertFfn: file.sharedExpertFfn }),
    ...(file.sharedExpertGate === undefined ? {} : { sharedExpertGate: file.sharedExpertGate }),
    ...(file.moeLatentSize === undefined ? {} : { moeLatentSize: file.moeLatentSize }),
    ...(file.untieEmbeddings === undefined ? {} : { untieEmbeddings: file.untieEmbeddings }),
    ...(file.mla === undefined ? {} : { mla: { ...file.mla, qLoraRank: file.mla.qLoraRank ?? 0 } }),
    ...(file.mtpLayers === undefined ? {} : { mtpLayers: file.mtpLayers }),
    ...(file.slidingWindow === undefined ? {} : { slidingWindow: file.slidingWindow }),
    ...(file.windowAttnSkipFreq === undefined ? {} : { windowAttnSkipFreq: file.windowAttnSkipFreq }),
    ...(file.softmaxType === undefined ? {} : { softmaxType: file.softmaxType }),
    ...(file.qkvBias === undefined ? {} : { qkvBias: file.qkvBias }),
    ...(file.linearBias === undefined ? {} : { linearBias: file.linearBias }),
    ...(file.routerBias === undefined ? {} : { routerBias: file.routerBias }),
  },
})
