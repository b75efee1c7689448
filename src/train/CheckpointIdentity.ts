/**
 * CheckpointIdentity: what a resumed run must share with the checkpoint it resumes: every model
 * setting that shapes or adds parameters (sizes, which layers are MoE, the head width, shared
 * experts and their gate, tied or untied embeddings, q/k/v biases, q/k norms, multi-latent
 * attention and its widths, multi-token prediction layers), the seed
 * (weights and data come from it) and the dtype of the values. Settings a checkpoint written
 * before one existed leaves out read as their defaults. The router, RoPE base and norm epsilon
 * may change on a resume (extending the context is one reason), so they are not compared.
 */
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import * as ModelContext from "../model/ModelContext.js"
import type * as DType from "../tensor/DType.js"
import type * as ModelConfig from "./ModelConfig.js"

/**
 * A run's identity.
 * @category models
 */
export interface RunIdentity {
  /** The model (its router options are not part of the identity). */
  readonly model: Omit<ModelConfig.ModelConfig, "moe">
  readonly seed: number
  readonly dtype: DType.DType
}

/** The sizes that shape the parameters, compared as they are. */
const shapingFields = ["vocab", "hidden", "layers", "heads", "kvHeads", "ffn", "experts", "moeFfn", "moeEvery"] as const

const onOff = (x: boolean | undefined): string => (x === true ? "on" : "off")

/** The gated MLPs' activation in a line, swiglu when plain. */
const gluText = (g: ModelConfig.ModelConfig["glu"]): string =>
  g === undefined || GatedActivation.isPlain(g) ? "swiglu" : `(alpha ${g.alpha}, offset ${g.offset}, limit ${g.limit ?? "none"})`

/** Multi-latent attention's widths in a line, or off. */
const latentText = (s: ModelConfig.ModelConfig["mla"]): string =>
  s === undefined
    ? "off"
    : `(q-lora-rank ${s.qLoraRank}, kv-lora-rank ${s.kvLoraRank}, qk-head-dim ${s.qkHeadDim}, qk-pos-emb-head-dim ${s.qkPosEmbHeadDim}, v-head-dim ${s.vHeadDim})`

/**
 * The settings in which `saved` (a manifest's model, seed and dtype) and `run` differ, each as
 * "field value" for the saved and for this run, in a fixed order; empty where the run may resume.
 * @category guards
 */
export const differences = (saved: RunIdentity, run: RunIdentity): { readonly saved: Array<string>; readonly here: Array<string> } => {
  const was: Array<string> = []
  const is: Array<string> = []
  const differ = (field: string, a: string | number, b: string | number) => {
    if (a === b) return
    was.push(`${field} ${a}`)
    is.push(`${field} ${b}`)
  }
  const [m, r] = [saved.model, run.model]
  for (const f of shapingFields) differ(f, m[f], r[f])
  differ("denseFirst", m.denseFirst ?? 0, r.denseFirst ?? 0)
  // A head width of its own on either side (else it follows hidden and heads, compared above).
  if (m.headDim !== undefined || r.headDim !== undefined) differ("headDim", ModelContext.headDim(m), ModelContext.headDim(r))
  differ("qkNorm", onOff(m.qkNorm), onOff(r.qkNorm))
  differ("qkNormOverHeads", onOff(m.qkNormOverHeads), onOff(r.qkNormOverHeads))
  differ("noRopeFreq", m.noRopeFreq ?? "none", r.noRopeFreq ?? "none")
  differ("normOnePlus", onOff(m.normOnePlus), onOff(r.normOnePlus))
  differ("qkL2Norm", onOff(m.qkL2Norm), onOff(r.qkL2Norm))
  differ("mla", latentText(m.mla), latentText(r.mla))
  differ("mtpLayers", m.mtpLayers ?? 0, r.mtpLayers ?? 0)
  // Shared experts add parameters: a run without them must not drop a checkpoint's silently.
  differ("sharedExpertFfn", m.sharedExpertFfn ?? "none", r.sharedExpertFfn ?? "none")
  // A latent width changes the experts' shapes and adds the projections.
  differ("moeLatentSize", m.moeLatentSize ?? "none", r.moeLatentSize ?? "none")
  const embeddings = (untie: boolean | undefined) => (untie === true ? "untied" : "tied")
  differ("embeddings", embeddings(m.untieEmbeddings), embeddings(r.untieEmbeddings))
  differ("sharedExpertGate", onOff(m.sharedExpertGate), onOff(r.sharedExpertGate))
  differ("qkvBias", onOff(m.qkvBias), onOff(r.qkvBias))
  differ("linearBias", onOff(m.linearBias), onOff(r.linearBias))
  differ("routerBias", onOff(m.routerBias), onOff(r.routerBias))
  // Learnable sinks are parameters; off-by-one changes what the trained weights compute.
  differ("softmaxType", m.softmaxType ?? "vanilla", r.softmaxType ?? "vanilla")
  // The activation changes what the trained weights compute.
  differ("glu", gluText(m.glu), gluText(r.glu))
  differ("seed", saved.seed, run.seed)
  differ("dtype", saved.dtype, run.dtype)
  return { saved: was, here: is }
}
