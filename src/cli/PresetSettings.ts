/**
 * PresetSettings: a model as the settings of a run (keys of RunConfig, as a config file writes
 * them): what a --model preset fills (scaled by --scale), and the config file `pleat import`
 * writes for an imported model.
 */
import * as AuxLossSpec from "../moe/AuxLossSpec.js"
import type * as MoeSettings from "../moe/MoeSettings.js"
import type * as ModelConfig from "../train/ModelConfig.js"
import * as RopeScaling from "../tensor/ops/RopeScaling.js"
import * as ModelPresets from "../train/ModelPresets.js"
import * as PresetScale from "../train/PresetScale.js"
import type * as RunConfig from "./RunConfig.js"

/**
 * Whether `name` is a preset's.
 * @category guards
 */
export const isPresetName = (name: unknown): name is ModelPresets.Name => typeof name === "string" && ModelPresets.names.includes(name as ModelPresets.Name)

/**
 * The settings a preset scaled by `factor` fills, as keys.
 * @category constructors
 */
export const presetValues = (name: ModelPresets.Name, factor: number): Partial<Record<RunConfig.Key, number | string | boolean>> => {
  const preset: ModelPresets.Preset = ModelPresets.presets[name]
  return modelSettings(PresetScale.scale(preset.model, factor), preset.moe)
}

/**
 * The settings (as keys of a config file) that give the model `m` with the router options `r`:
 * what a preset fills, or a config file for an imported model.
 * @category constructors
 */
export const modelSettings = (m: ModelConfig.ModelConfig, r: Partial<MoeSettings.MoeSettings>): Partial<Record<RunConfig.Key, number | string | boolean>> => {
  const scaling = m.ropeScaling
  const llama3 = scaling !== undefined && RopeScaling.isLlama3(scaling) ? scaling : undefined
  const yarn = scaling !== undefined && RopeScaling.isYarn(scaling) ? scaling : undefined
  const values: Partial<Record<RunConfig.Key, number | string | boolean | undefined>> = {
    layers: m.layers,
    hidden: m.hidden,
    heads: m.heads,
    "kv-heads": m.kvHeads,
    vocab: m.vocab,
    experts: m.experts,
    topk: m.topk,
    ffn: m.ffn,
    "moe-ffn": m.moeFfn,
    "moe-every": m.moeEvery,
    "dense-first": m.denseFirst,
    seq: m.seq,
    "shared-expert-ffn": m.sharedExpertFfn,
    "moe-latent-size": m.moeLatentSize,
    "qkv-bias": m.qkvBias,
    "add-bias-linear": m.linearBias,
    "router-bias": m.routerBias,
    "head-dim": m.headDim,
    "qk-norm": m.qkNorm,
    "qk-norm-over-heads": m.qkNormOverHeads,
    "apply-layernorm-1p": m.normOnePlus,
    "qk-l2-norm": m.qkL2Norm,
    "multi-latent-attention": m.mla === undefined ? undefined : true,
    "q-lora-rank": m.mla === undefined || m.mla.qLoraRank === 0 ? undefined : m.mla.qLoraRank,
    "kv-lora-rank": m.mla?.kvLoraRank,
    "qk-head-dim": m.mla?.qkHeadDim,
    "qk-pos-emb-head-dim": m.mla?.qkPosEmbHeadDim,
    "v-head-dim": m.mla?.vHeadDim,
    "mtp-num-layers": m.mtpLayers,
    "mtp-loss-scaling-factor": m.mtpLossScale,
    "rope-type": scaling === undefined ? undefined : RopeScaling.isYarn(scaling) ? "yarn" : scaling.type,
    "rotary-scaling-factor": m.ropeScaling?.factor,
    "original-max-position-embeddings": llama3?.originalMaxPositions ?? yarn?.originalMaxPositions,
    "beta-fast": yarn?.betaFast,
    "beta-slow": yarn?.betaSlow,
    mscale: yarn?.mscale,
    "mscale-all-dim": yarn?.mscaleAllDim,
    "no-yarn-correction-range-round-to-int": yarn?.truncate === false ? true : undefined,
    "low-freq-factor": llama3?.lowFreqFactor,
    "high-freq-factor": llama3?.highFreqFactor,
    "rope-theta": m.ropeTheta,
    "rotary-percent": m.rotaryPercent,
    "sliding-window": m.slidingWindow,
    "window-attn-skip-freq": m.windowAttnSkipFreq === undefined ? undefined : String(m.windowAttnSkipFreq),
    "no-rope-freq": m.noRopeFreq === undefined ? undefined : String(m.noRopeFreq),
    "softmax-type": m.softmaxType,
    "norm-eps": m.normEps,
    "untie-embeddings": m.untieEmbeddings,
    "shared-expert-gate": m.sharedExpertGate,
    "quick-geglu": m.glu === undefined ? undefined : m.glu.alpha !== 1,
    "glu-linear-offset": m.glu?.offset,
    "activation-func-clamp-value": m.glu?.limit,
    "score-function": r.scoreFunction,
    "pre-softmax": r.preSoftmax,
    "num-groups": r.numGroups,
    "group-topk": r.groupTopk,
    "scaling-factor": r.scalingFactor,
    "aux-loss": r.auxLosses === undefined ? undefined : AuxLossSpec.formatAuxLoss(r.auxLosses),
    "z-loss-coeff": r.zLossCoeff,
    "expert-bias": r.expertBias,
  }
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<Record<RunConfig.Key, number | string | boolean>>
}
