/**
 * ManifestModel: the model as a checkpoint's manifest.json records it (Checkpoint.modelRecord
 * writes it): ModelConfig's settings, those a run does not use left out, and the router options
 * the run trained with. Unknown keys are ignored, so newer manifests still load.
 */
import * as Schema from "effect/Schema"
import * as ModelContext from "../model/ModelContext.js"

/**
 * A count in a manifest: an integer of 1 or more.
 * @category models
 */
export const count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))

/**
 * The schema of the manifest's `model`.
 * @category models
 */
export const ManifestModelSchema = Schema.Struct({
  vocab: count,
  hidden: count,
  layers: count,
  heads: count,
  kvHeads: count,
  ffn: count,
  experts: count,
  topk: count,
  moeFfn: count,
  moeEvery: count,
  seq: count,
  /** Written only by runs with untied embeddings (absent: tied). */
  untieEmbeddings: Schema.optional(Schema.Boolean),
  /** Written only by runs with shared experts (older checkpoints have neither). */
  sharedExpertFfn: Schema.optionalKey(count),
  sharedExpertGate: Schema.optionalKey(Schema.Boolean),
  /** Written only by LatentMoE runs (--moe-latent-size). */
  moeLatentSize: Schema.optionalKey(count),
  /** Written only by runs with them: q, k, v biases, leading dense layers, a head width of its own, q and k norms. */
  qkvBias: Schema.optional(Schema.Boolean),
  /** Written only by runs with them: the linear layers' biases (--add-bias-linear) and the router's (--router-bias). */
  linearBias: Schema.optional(Schema.Boolean),
  routerBias: Schema.optional(Schema.Boolean),
  denseFirst: Schema.optional(count),
  headDim: Schema.optional(count),
  qkNorm: Schema.optional(Schema.Boolean),
  qkL2Norm: Schema.optional(Schema.Boolean),
  qkNormOverHeads: Schema.optional(Schema.Boolean),
  normOnePlus: Schema.optional(Schema.Boolean),
  /** Written only by runs with multi-token prediction: its layers and their losses' weight. */
  mtpLayers: Schema.optional(count),
  mtpLossScale: Schema.optional(Schema.Number),
  /** Written only by runs with multi-latent attention: its widths (ModelConfig.mla). */
  mla: Schema.optional(
    Schema.Struct({
      qLoraRank: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
      kvLoraRank: count,
      qkHeadDim: count,
      qkPosEmbHeadDim: count,
      vHeadDim: count,
    }),
  ),
  /** Written only by runs that set them (absent: ModelContext's defaults, all a pleat before them had). */
  ropeTheta: Schema.optional(Schema.Number),
  /** Written only by runs that rotate a part of each head (--rotary-percent); like the base, a resume may change it. */
  rotaryPercent: Schema.optional(Schema.Number),
  /** Written only by runs with YaRN's, Llama 3's or linear scaling (RopeScaling.Scaling); like the base, a resume may change it. */
  ropeScaling: Schema.optional(
    Schema.Union([
      Schema.Struct({ type: Schema.Literal("linear"), factor: Schema.Number }),
      Schema.Struct({
        type: Schema.Literal("llama3"),
        factor: Schema.Number,
        lowFreqFactor: Schema.Number,
        highFreqFactor: Schema.Number,
        originalMaxPositions: count,
      }),
      Schema.Struct({
        factor: Schema.Number,
        originalMaxPositions: count,
        betaFast: Schema.Number,
        betaSlow: Schema.Number,
        mscale: Schema.Number,
        mscaleAllDim: Schema.Number,
        truncate: Schema.optional(Schema.Boolean),
      }),
    ]),
  ),
  normEps: Schema.optional(Schema.Number),
  slidingWindow: Schema.optional(count),
  windowAttnSkipFreq: Schema.optional(count),
  noRopeFreq: Schema.optional(count),
  softmaxType: Schema.optional(Schema.Literals(ModelContext.softmaxTypes)),
  /** Written only by runs whose gated MLPs are not plain SwiGLU (GatedActivation.Glu). */
  glu: Schema.optional(Schema.Struct({ alpha: Schema.Number, offset: Schema.Number, limit: Schema.optional(Schema.Number) })),
  /** The router options the run trained with (MoeSettings; its other keys are not read back). */
  moe: Schema.optionalKey(
    Schema.Struct({
      scoreFunction: Schema.Literals(["softmax", "sigmoid", "sqrtsoftplus"]),
      preSoftmax: Schema.Boolean,
      numGroups: Schema.optional(count),
      groupTopk: Schema.optional(count),
      scalingFactor: Schema.optional(Schema.Number),
      expertBias: Schema.Boolean,
      sinkhorn: Schema.optional(Schema.Boolean),
      quantileBalancing: Schema.optional(Schema.Boolean),
      hashLayers: Schema.optional(count),
      probsAt: Schema.optional(Schema.String),
      auxLosses: Schema.Array(Schema.Struct({ type: Schema.String, coeff: Schema.Number })),
    }),
  ),
})
