/**
 * HfUpcycle: a dense Hugging Face model (Llama, Mistral, Qwen3) as a mixture of experts to train
 * on (sparse upcycling, Megatron-LM's --moe-use-upcycling): every layer's MLP becomes E experts,
 * each a copy of it, behind a router of pleat's own initialization (the `layers.L.router` a run
 * with the import's seed starts from). The router's probs over the top-k are renormalized, so at
 * step 0 the model computes what the dense one does (the experts are one function and their
 * weights sum to 1); training then sets the experts apart.
 *
 * Granularity G (Megatron-LM's --moe-upcycling-granularity, the virtual-group initialization of
 * arXiv 2410.07524, as upcycling_utils does it): each MLP is cut into G experts along its hidden
 * units (width F / G), expert r G + g holding cut g of copy r (E / G copies); the G experts of a
 * copy share one router row (the initial router's rows 0..E/G - 1, each repeated G times), and
 * every weight is scaled by G^(1/3), so that a token given one whole copy (top-k G: each cut at
 * prob 1/G) gets G^(1/3) G^(1/3) G^(1/3) / G = 1 times the sum of the cuts where the activation
 * is homogeneous; SwiGLU's silu is not, so at G > 1 the start is near the dense model, not equal.
 *
 * The dense model is read as the mixture it becomes: Llama and Mistral as Mixtral (their
 * mlp.gate_proj / up_proj / down_proj as every block_sparse_moe.experts.E.w1 / w3 / w2),
 * Qwen3 as Qwen3-MoE (as every mlp.experts.E.*, every layer sparse), config.json rewritten with
 * the dense architecture's defaults for the keys it leaves out (they differ from the MoE
 * architecture's), and the rest of the import is Mixtral's or Qwen3-MoE's. A config.json that is
 * already a mixture, or of another architecture, is refused naming --experts.
 */
import * as ConfigError from "../errors/ConfigError.js"
import type * as HfLayout from "./HfLayout.js"
import type * as ModelConfig from "./ModelConfig.js"
import * as ParamInit from "./ParamInit.js"
import * as Params from "./Params.js"
import * as Safetensors from "./Safetensors.js"

/**
 * The mixture a dense model becomes: its experts and each token's top-k.
 * @category models
 */
export interface Upcycle {
  readonly experts: number
  readonly topk: number
  /** The experts each MLP is cut into (1: whole copies). */
  readonly granularity: number
}

/** transformers' defaults of the dense architectures, for the keys the MoE ones default otherwise. */
const dense: Readonly<Record<string, { readonly as: string; readonly defaults: Readonly<Record<string, unknown>> }>> = {
  llama: { as: "mixtral", defaults: { rms_norm_eps: 1e-6, rope_theta: 10000, sliding_window: null, tie_word_embeddings: false } },
  mistral: { as: "mixtral", defaults: { num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_theta: 10000, sliding_window: 4096, tie_word_embeddings: false } },
  qwen3: { as: "qwen3_moe", defaults: { num_key_value_heads: 32, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false } },
}

/**
 * The model_type of a config.json that is a dense model pleat upcycles, or undefined.
 * @category guards
 */
export const denseType = (json: unknown): string | undefined => {
  const type = typeof json === "object" && json !== null ? (json as Record<string, unknown>).model_type : undefined
  return typeof type === "string" && Object.hasOwn(dense, type) ? type : undefined
}

/** The architectures a mixture is made of. */
const moeTypes = ["mixtral", "qwen2_moe", "qwen3_moe", "dots1", "deepseek_v3", "gpt_oss", "glm4_moe", "deepseek_v2", "olmoe"]

/**
 * config.json of the mixture `dense` becomes; a ConfigError naming `--experts` where it is not a
 * dense model pleat upcycles, or the mixture cannot be made.
 * @category constructors
 */
export const configOf = (json: unknown, u: Upcycle): Record<string, unknown> => {
  const c = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>
  const type = String(c.model_type)
  if (moeTypes.includes(type)) throw ConfigError.make("--experts", u.experts, `upcycles a dense model, and the model is a ${type} mixture already`, "drop --experts and --topk")
  const d = dense[type]
  if (d === undefined)
    throw ConfigError.make(
      "--experts",
      u.experts,
      `upcycles a Llama, Mistral or Qwen3 model, and the model is ${type}`,
      "pass a dense model with model_type llama, mistral or qwen3",
    )
  if (!Number.isSafeInteger(u.experts) || u.experts < 2)
    throw ConfigError.make("--experts", u.experts, "is not a number of experts of 2 or more", "pass --experts E with E = 2, 3, ...")
  if (!Number.isSafeInteger(u.topk) || u.topk < 1 || u.topk > u.experts)
    throw ConfigError.make("--topk", u.topk, `is not between 1 and the ${u.experts} experts`, `pass --topk K with 1 <= K <= ${u.experts}`)
  const width = Number(c.intermediate_size)
  // A config without intermediate_size is refused as it is read (its schema requires the key).
  if (!Number.isSafeInteger(u.granularity) || u.granularity < 1 || (Number.isSafeInteger(width) && width % u.granularity !== 0) || u.experts % u.granularity !== 0)
    throw ConfigError.make(
      "--granularity",
      u.granularity,
      `does not cut the MLP's ${width} hidden units and the ${u.experts} experts into whole parts`,
      "pass a granularity that divides both intermediate_size and --experts",
    )
  // A key the dense config leaves out takes the dense architecture's default, not the mixture's;
  // null kv heads are the heads (every one of these architectures says so).
  const filled: Record<string, unknown> = { ...c }
  for (const [key, value] of Object.entries(d.defaults)) if (filled[key] === undefined) filled[key] = value
  if (filled.num_key_value_heads === undefined || filled.num_key_value_heads === null) filled.num_key_value_heads = c.num_attention_heads
  // Mixtral's intermediate_size is its experts' width; Qwen3-MoE's moe_intermediate_size.
  const cut = width / u.granularity
  const experts =
    d.as === "mixtral"
      ? { num_local_experts: u.experts, intermediate_size: cut }
      : { num_experts: u.experts, moe_intermediate_size: cut, decoder_sparse_step: 1, mlp_only_layers: [], norm_topk_prob: true }
  // once a job: an import
  return { ...filled, model_type: d.as, num_experts_per_tok: u.topk, ...experts }
}

/** The MLP tensors of layer `l` of the dense model: gate, up, down. */
const denseMlp = (l: number) => (["gate_proj", "up_proj", "down_proj"] as const).map((p) => `model.layers.${l}.mlp.${p}.weight`)

/** Expert `e`'s gate, up and down of layer `l` in the mixture's names. */
const expertNames = (format: HfLayout.Format, l: number, e: number): ReadonlyArray<string> =>
  format === "mixtral"
    ? ["w1", "w3", "w2"].map((w) => `model.layers.${l}.block_sparse_moe.experts.${e}.${w}.weight`)
    : ["gate_proj", "up_proj", "down_proj"].map((p) => `model.layers.${l}.mlp.experts.${e}.${p}.weight`)

/** Layer `l`'s router in the mixture's names ([E, H], a Linear). */
const routerName = (format: HfLayout.Format, l: number): string => (format === "mixtral" ? `model.layers.${l}.block_sparse_moe.gate.weight` : `model.layers.${l}.mlp.gate.weight`)

/**
 * The dense model's tensors as the mixture's: each layer's MLP read as every expert's, its router
 * pleat's initial `layers.L.router` for `seed` (transposed to a Linear's [E, H]).
 * @category constructors
 */
export const tensorsOf = (
  tensors: ReadonlyMap<string, Safetensors.Lazy>,
  format: HfLayout.Format,
  model: ModelConfig.ModelConfig,
  seed: number,
  granularity: number,
): Map<string, Safetensors.Lazy> => {
  const out = new Map(tensors)
  const specs = new Map(Params.specs(model).map((s) => [s.name, s]))
  const scale = granularity ** (1 / 3)
  for (let l = 0; l < model.layers; l++) {
    const mlp = denseMlp(l).map((name) => tensors.get(name))
    // A tensor missing stays missing: the import names it (as the mixture's expert 0).
    for (const name of denseMlp(l)) out.delete(name)
    for (let e = 0; e < model.experts; e++)
      expertNames(format, l, e).forEach((name, i) => {
        const t = mlp[i]
        // gate and up [F, H]: rows of cut g; down [H, F]: its columns.
        if (t !== undefined) out.set(name, granularity === 1 ? t : cutOf(t, e % granularity, granularity, i === 2, scale))
      })
    const spec = specs.get(`layers.${l}.router`) as Params.ParamSpec
    const [h, experts] = spec.shape as [number, number]
    out.set(
      routerName(format, l),
      Safetensors.slabsOf("F64", [experts, h], () => {
        const w = ParamInit.initial(spec, seed, "float64").data
        const t = new Float64Array(experts * h)
        // Expert e takes the initial router's row floor(e / G): a copy's G cuts route alike.
        for (let i = 0; i < h; i++) for (let e = 0; e < experts; e++) t[e * h + i] = w[i * experts + Math.floor(e / granularity)] as number
        return t
      }),
    )
  }
  return out
}

/** Cut `g` of `parts` of a Linear [out, in] (its rows, or with `columns` its columns), times `scale`. */
const cutOf = (t: Safetensors.Lazy, g: number, parts: number, columns: boolean, scale: number): Safetensors.Lazy => {
  const [rows, cols] = t.shape as [number, number]
  const shape = columns ? [rows, cols / parts] : [rows / parts, cols]
  return Safetensors.slabsOf("F64", shape, () => {
    const v = t.values()
    const [r, c] = shape as [number, number]
    const cut = new Float64Array(r * c)
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) cut[i * c + j] = scale * (v[columns ? i * cols + g * c + j : (g * r + i) * cols + j] as number)
    return cut
  })
}
