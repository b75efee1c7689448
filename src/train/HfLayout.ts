/**
 * HfLayout: where each tensor of a transformers Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model comes from
 * in pleat's parameters, the one table that `pleat export` (HfExport) and `pleat import`
 * (HfImport) read in opposite directions.
 *
 * pleat keeps matrices as [in, out], transformers' Linear as [out, in]: a `linear` placement is
 * a transpose. An expert's matrices are one Linear per expert in the Hub's layout (Mixtral:
 * block_sparse_moe.experts.E.w1 / w3 / w2 for gate / up / down; the Qwens:
 * mlp.experts.E.gate_proj / up_proj / down_proj), cut from pleat's [E, in, out] parameters.
 * Qwen2-MoE's q, k and v biases are pleat's bq, bk, bv (--qkv-bias), or zeros without them;
 * Qwen3-MoE's are pleat's where it has them (attention_bias), with zeros for o's. Qwen3-MoE's
 * q_norm and k_norm are pleat's qNorm and kNorm (--qk-norm). dots1 is Qwen3's attention with
 * mlp.gate.e_score_correction_bias (the expert biases, which pleat keeps in the checkpoint's
 * manifest) and mlp.shared_experts. Heads are ModelContext.headDim wide.
 * DeepSeek-V3 is dots1's MoE with multi-latent attention (LatentAttention): self_attn.q_a_proj,
 * q_a_layernorm, q_b_proj (or q_proj without a query latent), kv_a_proj_with_mqa,
 * kv_a_layernorm, kv_b_proj and o_proj are pleat's wqA, qANorm, wqB (wq), wkvA, kvANorm, wkvB
 * and wo. Its rotary rows (each head's last dr rows of q_b_proj, the last dr rows of
 * kv_a_proj_with_mqa) are in DeepSeek's interleaved order (rope_interleave: pairs 2i, 2i + 1)
 * where pleat's are rotate-half (pairs i, i + dr/2): a `linear` placement's `rope` says where.
 * GLM-4.5 (glm4_moe) is dots1's MoE with q/k/v biases where pleat has them (none on o) and q/k
 * norms where it has them. DeepSeek-V2 is DeepSeek-V3's layout without the expert biases (its
 * router is softmax) and without rope_interleave: its rotary rows are always interleaved. OLMoE
 * is Qwen3-MoE's layout with q_norm and k_norm over the whole q and k (pleat's qNorm and kNorm
 * of --qk-norm-over-heads, one weight per column).
 * Which layers are MoE is the model's rule (ModelContext.isMoe).
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import * as ModelContext from "../model/ModelContext.js"
import type * as ModelConfig from "./ModelConfig.js"

/**
 * The architectures of transformers that hold pleat's model.
 * @category models
 */
export const formats = ["mixtral", "qwen2-moe", "qwen3-moe", "dots1", "deepseek-v3", "gpt-oss", "glm4-moe", "deepseek-v2", "olmoe"] as const

/**
 * One of `formats`.
 * @category models
 */
export type Format = (typeof formats)[number]

/**
 * The formats that hold multi-token prediction layers, as DeepSeek-V3's and GLM-4.5's checkpoints
 * do: num_nextn_predict_layers modules past the last layer (model.layers.L.* from L = layers on),
 * which transformers does not load.
 * @category models
 */
export const holdsMtp = (format: Format): boolean => format === "deepseek-v3" || format === "glm4-moe"

/**
 * The formats whose MoE layers are DeepSeek's (dots1's, DeepSeek-V2's and -V3's, GLM-4.5's):
 * routed experts beside ungated shared ones (mlp.shared_experts), dense layers first only
 * (first_k_dense_replace). All but DeepSeek-V2's route with sigmoid scores and an expert bias
 * (mlp.gate.e_score_correction_bias).
 * @category models
 */
export const deepSeekMoe = (format: Format): boolean => format === "dots1" || format === "deepseek-v3" || format === "glm4-moe" || format === "deepseek-v2"

/**
 * The formats whose attention is multi-latent (DeepSeek-V2's and -V3's).
 * @category models
 */
export const latentAttention = (format: Format): boolean => format === "deepseek-v3" || format === "deepseek-v2"

/**
 * The sizes the layout depends on (the model's settings: ModelConfig). Among them, linearBias
 * carries the output projection's and the experts' biases (gpt-oss) and the router's, mtpLayers
 * the layers past the last (deepseek-v3 and glm4-moe: holdsMtp), softmaxType gpt-oss's learnable sinks
 * (written as they are; off-by-one as zeros).
 * @category models
 */
export type Sizes = Pick<
  ModelConfig.ModelConfig,
  | "hidden"
  | "layers"
  | "heads"
  | "kvHeads"
  | "experts"
  | "moeEvery"
  | "denseFirst"
  | "untieEmbeddings"
  | "qkvBias"
  | "linearBias"
  | "routerBias"
  | "headDim"
  | "qkNorm"
  | "mla"
  | "mtpLayers"
  | "softmaxType"
  | "moeFfn"
>

/**
 * Rotary rows of a transformers matrix ([out, in]) in DeepSeek's interleaved order: in each
 * block of `every` rows, the `width` rows from `from` on.
 * @category models
 */
export interface RopeRows {
  readonly every: number
  readonly from: number
  readonly width: number
}

/**
 * How one transformers tensor `hf` is made of pleat's parameter `pleat`: as it is, transposed
 * (`linear`, its `rope` rows interleaved), one expert's matrix transposed (`expert`), zeros of
 * `size` (`zeros`, of `shape` where it has more than one dimension), or GPT-OSS's gate_up_proj
 * [E, H, 2F] from the experts' gate and up [E, H, F] (`gateUp`: gate in the even columns; its
 * bias [E, 2F] from theirs [E, F] alike); or
 * MoE layer `layer`'s expert bias (`bias`: pleat keeps it with the router state, not as a
 * parameter; the checkpoint's manifest holds it).
 * @category models
 */
export type Placement =
  | { readonly kind: "bias"; readonly hf: string; readonly layer: number; readonly size: number }
  | { readonly kind: "same"; readonly hf: string; readonly pleat: string }
  | { readonly kind: "linear"; readonly hf: string; readonly pleat: string; readonly rope?: RopeRows }
  | { readonly kind: "expert"; readonly hf: string; readonly pleat: string; readonly expert: number }
  | { readonly kind: "zeros"; readonly hf: string; readonly size: number; readonly shape?: ReadonlyArray<number> }
  | { readonly kind: "gateUp"; readonly hf: string; readonly gate: string; readonly up: string }

/** Grouped-query attention's tensors of a layer (`hf`, `p`: the layer's prefixes). */
const groupedQuery = (m: Sizes, format: Format, hf: string, p: string, headDim: number, out: Array<Placement>): void => {
  for (const [proj, w, b, heads] of [
    ["q_proj", "wq", "bq", m.heads],
    ["k_proj", "wk", "bk", m.kvHeads],
    ["v_proj", "wv", "bv", m.kvHeads],
  ] as const) {
    out.push({ kind: "linear", hf: `${hf}self_attn.${proj}.weight`, pleat: `${p}${w}` })
    if (m.qkvBias === true) out.push({ kind: "same", hf: `${hf}self_attn.${proj}.bias`, pleat: `${p}${b}` })
    else if (format === "qwen2-moe" || format === "gpt-oss") out.push({ kind: "zeros", hf: `${hf}self_attn.${proj}.bias`, size: heads * headDim })
  }
  out.push({ kind: "linear", hf: `${hf}self_attn.o_proj.weight`, pleat: `${p}wo` })
  // Qwen3-MoE's and dots1's attention_bias puts a bias on o too: pleat's with --add-bias-linear, else zeros.
  if (m.linearBias === true) out.push({ kind: "same", hf: `${hf}self_attn.o_proj.bias`, pleat: `${p}bo` })
  else if (((format === "qwen3-moe" || format === "dots1" || format === "olmoe") && m.qkvBias === true) || format === "gpt-oss")
    out.push({ kind: "zeros", hf: `${hf}self_attn.o_proj.bias`, size: m.hidden })
  if (format === "gpt-oss")
    out.push(m.softmaxType === "learnable" ? { kind: "same", hf: `${hf}self_attn.sinks`, pleat: `${p}sinks` } : { kind: "zeros", hf: `${hf}self_attn.sinks`, size: m.heads })
  if (m.qkNorm === true) {
    out.push({ kind: "same", hf: `${hf}self_attn.q_norm.weight`, pleat: `${p}qNorm` })
    out.push({ kind: "same", hf: `${hf}self_attn.k_norm.weight`, pleat: `${p}kNorm` })
  }
}

/**
 * Multi-latent attention's tensors of a layer (DeepSeek-V3's names); the rotary rows of the
 * query's up projection (each head's last dr) and of kv_a_proj_with_mqa (its last dr) interleaved.
 */
const latent = (
  s: LatentAttention.LatentSizes,
  hf: string,
  p: string,
  same: (hf: string, pleat: string) => void,
  linear: (hf: string, pleat: string, rope?: RopeRows) => void,
): void => {
  const dr = s.qkPosEmbHeadDim
  const queryRope = { every: s.qkHeadDim + dr, from: s.qkHeadDim, width: dr }
  const a = `${hf}self_attn.`
  if (s.qLoraRank > 0) {
    linear(`${a}q_a_proj.weight`, `${p}wqA`)
    same(`${a}q_a_layernorm.weight`, `${p}qANorm`)
    linear(`${a}q_b_proj.weight`, `${p}wqB`, queryRope)
  } else linear(`${a}q_proj.weight`, `${p}wq`, queryRope)
  linear(`${a}kv_a_proj_with_mqa.weight`, `${p}wkvA`, { every: s.kvLoraRank + dr, from: s.kvLoraRank, width: dr })
  same(`${a}kv_a_layernorm.weight`, `${p}kvANorm`)
  linear(`${a}kv_b_proj.weight`, `${p}wkvB`)
  linear(`${a}o_proj.weight`, `${p}wo`)
}

/**
 * GPT-OSS's MoE tensors of a layer: its router with a bias, the experts fused, their biases
 * (pleat's with --router-bias and --add-bias-linear; zeros without them).
 */
const gptOssMoe = (m: Sizes, block: string, p: string, out: Array<Placement>): void => {
  const [e, f, h] = [m.experts, m.moeFfn, m.hidden]
  out.push({ kind: "linear", hf: `${block}router.weight`, pleat: `${p}router` })
  out.push(m.routerBias === true ? { kind: "same", hf: `${block}router.bias`, pleat: `${p}routerBias` } : { kind: "zeros", hf: `${block}router.bias`, size: e })
  out.push({ kind: "gateUp", hf: `${block}experts.gate_up_proj`, gate: `${p}experts.wGate`, up: `${p}experts.wUp` })
  const biased = m.linearBias === true
  const gateUpBias = `${block}experts.gate_up_proj_bias`
  out.push(biased ? { kind: "gateUp", hf: gateUpBias, gate: `${p}experts.bGate`, up: `${p}experts.bUp` } : { kind: "zeros", hf: gateUpBias, size: e * 2 * f, shape: [e, 2 * f] })
  out.push({ kind: "same", hf: `${block}experts.down_proj`, pleat: `${p}experts.wDown` })
  const downBias = `${block}experts.down_proj_bias`
  out.push(biased ? { kind: "same", hf: downBias, pleat: `${p}experts.bDown` } : { kind: "zeros", hf: downBias, size: e * h, shape: [e, h] })
}

/**
 * `gate` and `up` of [E, H, F] as one [E, H, 2F] with gate's columns at even places and up's at
 * odd ones (GPT-OSS's gate_up_proj).
 * @category constructors
 */
export const gateUp = <A extends Float32Array | Float64Array>(gate: A, up: A, f: number): A => {
  const out = (gate instanceof Float32Array ? new Float32Array(2 * gate.length) : new Float64Array(2 * gate.length)) as A
  for (let i = 0; i < gate.length; i++) {
    const row = Math.floor(i / f)
    const c = i - row * f
    out[2 * (row * f + c)] = gate[i] as number
    out[2 * (row * f + c) + 1] = up[i] as number
  }
  return out
}

/**
 * Every tensor of the model in `format`, in the model's order.
 * @category constructors
 */
export const placements = (m: Sizes, format: Format): Array<Placement> => {
  const out: Array<Placement> = []
  const same = (hf: string, pleat: string) => out.push({ kind: "same", hf, pleat })
  const linear = (hf: string, pleat: string, rope?: RopeRows) => out.push({ kind: "linear", hf, pleat, ...(rope === undefined ? {} : { rope }) })
  const headDim = ModelContext.headDim(m)
  same("model.embed_tokens.weight", "embedding")
  const layer = (l: number) => {
    const p = `layers.${l}.`
    const hf = `model.layers.${l}.`
    same(`${hf}input_layernorm.weight`, `${p}attentionNorm`)
    if (m.mla !== undefined) latent(m.mla, hf, p, same, linear)
    else groupedQuery(m, format, hf, p, headDim, out)
    same(`${hf}post_attention_layernorm.weight`, `${p}ffnNorm`)
    if (!ModelContext.isMoe(m, l)) {
      linear(`${hf}mlp.gate_proj.weight`, `${p}wGate`)
      linear(`${hf}mlp.up_proj.weight`, `${p}wUp`)
      linear(`${hf}mlp.down_proj.weight`, `${p}wDown`)
      return
    }
    if (format === "gpt-oss") {
      gptOssMoe(m, `${hf}mlp.`, p, out)
      return
    }
    const block = format === "mixtral" ? `${hf}block_sparse_moe.` : `${hf}mlp.`
    linear(`${block}gate.weight`, `${p}router`)
    const shared = deepSeekMoe(format)
    if (shared && format !== "deepseek-v2") out.push({ kind: "bias", hf: `${block}gate.e_score_correction_bias`, layer: l, size: m.experts })
    const names = format === "mixtral" ? (["w1", "w3", "w2"] as const) : (["gate_proj", "up_proj", "down_proj"] as const)
    for (let e = 0; e < m.experts; e++) {
      out.push({ kind: "expert", hf: `${block}experts.${e}.${names[0]}.weight`, pleat: `${p}experts.wGate`, expert: e })
      out.push({ kind: "expert", hf: `${block}experts.${e}.${names[1]}.weight`, pleat: `${p}experts.wUp`, expert: e })
      out.push({ kind: "expert", hf: `${block}experts.${e}.${names[2]}.weight`, pleat: `${p}experts.wDown`, expert: e })
    }
    if (format === "qwen2-moe") {
      linear(`${block}shared_expert.gate_proj.weight`, `${p}shared.wGate`)
      linear(`${block}shared_expert.up_proj.weight`, `${p}shared.wUp`)
      linear(`${block}shared_expert.down_proj.weight`, `${p}shared.wDown`)
      linear(`${block}shared_expert_gate.weight`, `${p}shared.gate`)
    }
    if (shared) {
      linear(`${block}shared_experts.gate_proj.weight`, `${p}shared.wGate`)
      linear(`${block}shared_experts.up_proj.weight`, `${p}shared.wUp`)
      linear(`${block}shared_experts.down_proj.weight`, `${p}shared.wDown`)
    }
  }
  for (let l = 0; l < m.layers; l++) layer(l)
  // Multi-token prediction (DeepSeek-V3's and GLM-4.5's checkpoints: model.layers.L.* past the last layer): the
  // joining norms and projection, the block, its norm (shared_head.norm), and copies of the
  // model's embedding and output layer, which pleat's MTP layers share.
  const mtp = holdsMtp(format) ? ModelContext.mtpLayersOf(m) : 0
  for (let l = m.layers; l < m.layers + mtp; l++) {
    const hf = `model.layers.${l}.`
    const p = `layers.${l}.`
    same(`${hf}embed_tokens.weight`, "embedding")
    same(`${hf}enorm.weight`, `${p}enorm`)
    same(`${hf}hnorm.weight`, `${p}hnorm`)
    linear(`${hf}eh_proj.weight`, `${p}ehProj`)
    layer(l)
    same(`${hf}shared_head.norm.weight`, `${p}finalNorm`)
    if (m.untieEmbeddings === true) linear(`${hf}shared_head.head.weight`, "output")
    else same(`${hf}shared_head.head.weight`, "embedding")
  }
  same("model.norm.weight", "finalNorm")
  if (m.untieEmbeddings === true) linear("lm_head.weight", "output")
  return out
}

/**
 * `data` of shape [rows, cols] (from `at`), transposed into [cols, rows], in `data`'s type; or
 * only the transpose's rows `first` to `first + count - 1` (a slab of it).
 * @category constructors
 */
export const transposed = <A extends Float32Array | Float64Array>(data: A, at: number, rows: number, cols: number, first = 0, count = cols): A => {
  const out = (data instanceof Float32Array ? new Float32Array(rows * count) : new Float64Array(rows * count)) as A
  for (let r = 0; r < rows; r++) for (let c = 0; c < count; c++) out[c * rows + r] = data[at + r * cols + first + c] as number
  return out
}

/**
 * The row of a transformers matrix of `rows` rows that holds pleat's row (output column) r:
 * r itself, or within `rope`'s rows, rotate-half index i < width/2 at 2i and width/2 + i at 2i + 1.
 */
const ropeRow = (r: number, rope: RopeRows): number => {
  const j = (r % rope.every) - rope.from
  if (j < 0 || j >= rope.width) return r
  const half = rope.width / 2
  return r - j + (j < half ? 2 * j : 2 * (j - half) + 1)
}

/**
 * `data`, a matrix of [rows, cols], with row r moved to ropeRow(r) (`toHf`: pleat's order to
 * DeepSeek's interleaved one) or back from it.
 * @category constructors
 */
export const interleaved = <A extends Float32Array | Float64Array>(data: A, rows: number, cols: number, rope: RopeRows, toHf: boolean): A => {
  const out = (data instanceof Float32Array ? new Float32Array(rows * cols) : new Float64Array(rows * cols)) as A
  for (let r = 0; r < rows; r++) {
    const h = ropeRow(r, rope)
    const [from, to] = toHf ? [r, h] : [h, r]
    out.set(data.subarray(from * cols, (from + 1) * cols), to * cols)
  }
  return out
}
