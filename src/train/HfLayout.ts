/**
 * HfLayout: where each tensor of a transformers Mixtral, Qwen2-MoE, Qwen3-MoE or dots1 model comes from
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
 * Which layers are MoE is the model's rule (ModelContext.isMoe).
 */
import * as ModelContext from "../model/ModelContext.js"

/**
 * The architectures of transformers that hold pleat's model.
 * @category models
 */
export const formats = ["mixtral", "qwen2-moe", "qwen3-moe", "dots1"] as const

/**
 * One of `formats`.
 * @category models
 */
export type Format = (typeof formats)[number]

/**
 * The sizes the layout depends on.
 * @category models
 */
export interface Sizes {
  readonly hidden: number
  readonly layers: number
  readonly heads: number
  readonly kvHeads: number
  readonly experts: number
  readonly moeEvery: number
  readonly denseFirst?: number | undefined
  readonly untieEmbeddings?: boolean | undefined
  readonly qkvBias?: boolean | undefined
  readonly headDim?: number | undefined
  readonly qkNorm?: boolean | undefined
}

/**
 * How one transformers tensor `hf` is made of pleat's parameter `pleat`: as it is, transposed
 * (`linear`), one expert's matrix transposed (`expert`), or zeros of `size` (`zeros`); or
 * MoE layer `layer`'s expert bias (`bias`: pleat keeps it with the router state, not as a
 * parameter; the checkpoint's manifest holds it).
 * @category models
 */
export type Placement =
  | { readonly kind: "bias"; readonly hf: string; readonly layer: number; readonly size: number }
  | { readonly kind: "same" | "linear"; readonly hf: string; readonly pleat: string }
  | { readonly kind: "expert"; readonly hf: string; readonly pleat: string; readonly expert: number }
  | { readonly kind: "zeros"; readonly hf: string; readonly size: number }

/**
 * Every tensor of the model in `format`, in the model's order.
 * @category constructors
 */
export const placements = (m: Sizes, format: Format): Array<Placement> => {
  const out: Array<Placement> = []
  const same = (hf: string, pleat: string) => out.push({ kind: "same", hf, pleat })
  const linear = (hf: string, pleat: string) => out.push({ kind: "linear", hf, pleat })
  const headDim = ModelContext.headDim(m)
  same("model.embed_tokens.weight", "embedding")
  for (let l = 0; l < m.layers; l++) {
    const p = `layers.${l}.`
    const hf = `model.layers.${l}.`
    same(`${hf}input_layernorm.weight`, `${p}attentionNorm`)
    for (const [proj, w, b, heads] of [
      ["q_proj", "wq", "bq", m.heads],
      ["k_proj", "wk", "bk", m.kvHeads],
      ["v_proj", "wv", "bv", m.kvHeads],
    ] as const) {
      linear(`${hf}self_attn.${proj}.weight`, `${p}${w}`)
      if (m.qkvBias === true) same(`${hf}self_attn.${proj}.bias`, `${p}${b}`)
      else if (format === "qwen2-moe") out.push({ kind: "zeros", hf: `${hf}self_attn.${proj}.bias`, size: heads * headDim })
    }
    linear(`${hf}self_attn.o_proj.weight`, `${p}wo`)
    // Qwen3-MoE's and dots1's attention_bias puts a bias on o too, which pleat's attention has not.
    if ((format === "qwen3-moe" || format === "dots1") && m.qkvBias === true) out.push({ kind: "zeros", hf: `${hf}self_attn.o_proj.bias`, size: m.hidden })
    if (m.qkNorm === true) {
      same(`${hf}self_attn.q_norm.weight`, `${p}qNorm`)
      same(`${hf}self_attn.k_norm.weight`, `${p}kNorm`)
    }
    same(`${hf}post_attention_layernorm.weight`, `${p}ffnNorm`)
    if (!ModelContext.isMoe(m, l)) {
      linear(`${hf}mlp.gate_proj.weight`, `${p}wGate`)
      linear(`${hf}mlp.up_proj.weight`, `${p}wUp`)
      linear(`${hf}mlp.down_proj.weight`, `${p}wDown`)
      continue
    }
    const block = format === "mixtral" ? `${hf}block_sparse_moe.` : `${hf}mlp.`
    linear(`${block}gate.weight`, `${p}router`)
    if (format === "dots1") out.push({ kind: "bias", hf: `${block}gate.e_score_correction_bias`, layer: l, size: m.experts })
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
    if (format === "dots1") {
      linear(`${block}shared_experts.gate_proj.weight`, `${p}shared.wGate`)
      linear(`${block}shared_experts.up_proj.weight`, `${p}shared.wUp`)
      linear(`${block}shared_experts.down_proj.weight`, `${p}shared.wDown`)
    }
  }
  same("model.norm.weight", "finalNorm")
  if (m.untieEmbeddings === true) linear("lm_head.weight", "output")
  return out
}

/**
 * `data` of shape [rows, cols] (from `at`), transposed into [cols, rows], in `data`'s type.
 * @category constructors
 */
export const transposed = <A extends Float32Array | Float64Array>(data: A, at: number, rows: number, cols: number): A => {
  const out = (data instanceof Float32Array ? new Float32Array(rows * cols) : new Float64Array(rows * cols)) as A
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[at + r * cols + c] as number
  return out
}
