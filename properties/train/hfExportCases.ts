// The models HfExport.prop exports and imports: random models of each architecture pleat writes
// (their flags under random folded mappings) and the tensors each directory must hold.
import fc from "fast-check"

export interface Case {
  readonly arch: "mixtral" | "qwen2" | "qwen3" | "dots1" | "deepseek" | "gptoss" | "glm" | "deepseek2" | "olmoe"
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly layers: number
  readonly experts: number
  readonly topk: number
  readonly untie: boolean
  readonly seq: number
  readonly moeEvery: number
  readonly denseFirst: number
  readonly shared: number
  readonly preSoftmax: boolean
  readonly ropeTheta: number | undefined
  readonly qkvBias: boolean
  /** DeepSeek-V3: a query latent (q_lora_rank), or q_proj (q_lora_rank null). */
  readonly qLora: boolean
  readonly normEps: number | undefined
  readonly mapping: ReadonlyArray<string>
  readonly shardBytes: number | undefined
  readonly window: ReadonlyArray<number>
}

export const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const mappings: ReadonlyArray<ReadonlyArray<string>> = [
  oneRank,
  ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2"],
  ["--world", "4", "--tp", "1", "--cp", "2", "--pp", "1", "--ep", "4"],
  ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2", "--etp", "2"],
]

const vocab = 40

/** Random models of the architectures `archs`, under random mappings. */
export const casesOf = (...archs: ReadonlyArray<Case["arch"]>): fc.Arbitrary<Case> =>
  fc
    .record({
      arch: fc.constantFrom(...archs),
      kvHeads: fc.constantFrom(2, 4),
      groups: fc.constantFrom(1, 2),
      headDim: fc.constantFrom(4, 8),
      layers: fc.constantFrom(2, 4),
      experts: fc.constantFrom(4, 8),
      topk: fc.constantFrom(2, 3),
      untie: fc.boolean(),
      seq: fc.constantFrom(8, 16),
      moeEvery: fc.constantFrom(1, 2),
      denseFirst: fc.constantFrom(0, 0, 1),
      shared: fc.constantFrom(8, 16),
      preSoftmax: fc.boolean(),
      ropeTheta: fc.constantFrom(undefined, 500, 1e6),
      qkvBias: fc.boolean(),
      qLora: fc.boolean(),
      normEps: fc.constantFrom(undefined, 1e-5, 1e-2),
      mapping: fc.constantFrom(...mappings),
      shardBytes: fc.option(fc.integer({ min: 2000, max: 40000 }), { nil: undefined }),
      window: fc.array(fc.integer({ min: 0, max: vocab - 1 }), { minLength: 17, maxLength: 17 }),
    })
    .map(({ groups, ...c }) => ({
      ...c,
      heads: c.kvHeads * groups,
      // Multi-latent attention: every head its own keys and values; DeepSeek-V3's latent norms at 1e-6 (the default).
      ...(latent(c.arch) ? { kvHeads: c.kvHeads * groups, normEps: undefined } : {}),
      window: c.window.slice(0, c.seq + 1),
    }))

export const cases = casesOf("mixtral", "qwen2", "qwen3", "dots1", "deepseek", "gptoss", "glm", "deepseek2", "olmoe")

/** DeepSeek-V3 and -V2: multi-latent attention. */
export function latent(arch: Case["arch"]): boolean {
  return arch === "deepseek" || arch === "deepseek2"
}

/** The architectures with DeepSeek's MoE layers (ungated shared experts, dense layers first). */
export const deepSeekMoe = (c: Case): boolean => c.arch === "dots1" || c.arch === "glm" || latent(c.arch)

/** Qwen3's and dots1's heads are not hidden / heads wide: the hidden is fixed and --head-dim gives the width (6 or 10). */
export const qk = (c: Case): boolean => c.arch === "qwen3" || c.arch === "dots1"
export const hiddenOf = (c: Case): number => (qk(c) || latent(c.arch) ? 16 : c.heads * c.headDim)
export const headDimOf = (c: Case): number => (qk(c) ? c.headDim + 2 : c.headDim)

/**
 * dots1's router: sigmoid with trained expert biases, shared experts of 1 or 2 expert widths (12),
 * dense layers first only; with a top-2, groups (experts / 2 of them, one kept: dots1 scores a
 * group by its top 2) and, untied, a scaling factor.
 */
const dots1Flags = (c: Case): Array<string> => [
  ...["--score-function", "sigmoid", "--expert-bias", "--bias-update-rate", "0.05", "--shared-expert-ffn", String((c.shared / 8) * 12), "--dense-first", String(c.denseFirst)],
  ...(c.topk === 2 && c.qkvBias ? ["--num-groups", String(c.experts / 2), "--group-topk", "1"] : []),
  ...(c.untie ? ["--scaling-factor", "2.5"] : []),
]

/**
 * DeepSeek-V2's router: a softmax over every expert, its top-k as they are, shared experts of 1
 * or 2 expert widths (12), dense layers first only; with the case's qkvBias, groups (experts / 2
 * of them, two kept: DeepSeek-V2 scores a group by its best expert, pleat by its top floor(topk /
 * 2) = 1) and, untied, a scaling factor.
 */
const deepSeekV2Flags = (c: Case): Array<string> => [
  ...["--pre-softmax", "--aux-loss", "seq_aux:0.001", "--shared-expert-ffn", String((c.shared / 8) * 12), "--dense-first", String(c.denseFirst)],
  ...(c.qkvBias ? ["--num-groups", String(c.experts / 2), "--group-topk", "2"] : []),
  ...(c.untie ? ["--scaling-factor", "2.5"] : []),
]

/** DeepSeek-V3's multi-latent attention: a query latent of 12 or none, a kv latent of 8, heads of 4 or 8 + 6 rotary for q/k and 5 for v. */
const latentFlags = (c: Case): Array<string> => [
  ...["--multi-latent-attention", ...(c.qLora ? ["--q-lora-rank", "12"] : []), "--kv-lora-rank", "8"],
  ...["--qk-head-dim", String(c.headDim), "--qk-pos-emb-head-dim", "6", "--v-head-dim", "5"],
]

/**
 * GPT-OSS: its expert activation, learnable sinks (or off-by-one: zeros), a window of 3 on every
 * other layer (or none), and its biases, trained from zero (or zeros: the case's qkvBias).
 */
const gptOssFlags = (c: Case): Array<string> => [
  ...["--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "7", ...(c.qkvBias ? ["--add-bias-linear", "--router-bias"] : [])],
  ...["--softmax-type", c.preSoftmax ? "off-by-one" : "learnable", ...(c.qLora ? ["--sliding-window", "3", "--window-attn-skip-freq", "2"] : [])],
]

export const modelFlags = (c: Case): Array<string> => [
  ...["--vocab", String(vocab), "--hidden", String(hiddenOf(c)), "--heads", String(c.heads), "--kv-heads", String(c.kvHeads)],
  ...(qk(c) ? ["--head-dim", String(headDimOf(c)), "--qk-norm"] : []),
  ...["--layers", String(c.layers), "--experts", String(c.experts), "--topk", String(c.topk), "--seq", String(c.seq), "--ffn", "24", "--moe-ffn", "12"],
  ...(c.untie ? ["--untie-embeddings"] : []),
  ...(c.ropeTheta === undefined ? [] : ["--rope-theta", String(c.ropeTheta)]),
  ...(c.normEps === undefined ? [] : ["--norm-eps", String(c.normEps)]),
  ...(c.arch !== "mixtral" && !latent(c.arch) && c.arch !== "gptoss" && c.qkvBias ? ["--qkv-bias"] : []),
  ...(c.arch === "qwen2" || c.arch === "qwen3" ? ["--moe-every", String(c.moeEvery), "--dense-first", String(c.denseFirst), ...(c.preSoftmax ? ["--pre-softmax"] : [])] : []),
  ...(c.arch === "dots1" || c.arch === "deepseek" || c.arch === "glm" ? dots1Flags(c) : []),
  // GLM-4.5: RoPE on half of each head, q/k norms or not (the case's preSoftmax).
  ...(c.arch === "glm" ? ["--rotary-percent", "0.5", ...(c.preSoftmax ? ["--qk-norm"] : [])] : []),
  ...(c.arch === "deepseek2" ? deepSeekV2Flags(c) : []),
  // OLMoE: q and k norms over every head at once; the router renormalized or not (the case's preSoftmax).
  ...(c.arch === "olmoe" ? ["--qk-norm", "--qk-norm-over-heads", ...(c.preSoftmax ? ["--pre-softmax"] : [])] : []),
  ...(latent(c.arch) ? latentFlags(c) : []),
  ...(c.arch === "gptoss" ? gptOssFlags(c) : []),
  ...(c.arch === "qwen2" ? ["--shared-expert-ffn", String(c.shared), "--shared-expert-gate"] : []),
  ...["--dtype", "float64", "--global-batch", "4", "--micro-batch", "1"],
]

/** Tensors the directory must hold: no more, no fewer. */
export const expectedTensors = (c: Case): number => {
  let n = 2 + (c.untie ? 1 : 0)
  // GPT-OSS: norms, q, k, v, o with their biases (zeros where pleat has none), sinks; the router with its bias, the fused experts with theirs.
  if (c.arch === "gptoss") return n + c.layers * (2 + 8 + 1 + 2 + 4)
  for (let l = 0; l < c.layers; l++) {
    // Norms and q, k, v, o; Qwen2's q/k/v biases always (zeros without --qkv-bias); Qwen3's q/k norms, and biases (with o's) only with it.
    // DeepSeek-V3: norms, q_a_proj, q_a_layernorm and q_b_proj (or q_proj), kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o.
    // GLM-4.5: q/k/v biases with --qkv-bias (none on o), q/k norms with --qk-norm.
    // OLMoE: q/k norms always, biases (with o's) with --qkv-bias.
    n += latent(c.arch)
      ? 2 + (c.qLora ? 3 : 1) + 4
      : c.arch === "olmoe"
        ? 8 + (c.qkvBias ? 4 : 0)
        : c.arch === "glm"
          ? 6 + (c.qkvBias ? 3 : 0) + (c.preSoftmax ? 2 : 0)
          : 6 + (c.arch === "qwen2" ? 3 : 0) + (qk(c) ? 2 + (c.qkvBias ? 4 : 0) : 0)
    // The first denseFirst layers dense, then every moeEvery-th (dots1, DeepSeek-V3: every one).
    const every = deepSeekMoe(c) ? 1 : c.moeEvery
    const moe = c.arch === "mixtral" || c.arch === "olmoe" || (l >= c.denseFirst && (l - c.denseFirst) % every === 0)
    // Router, experts; Qwen2's shared expert and its gate; dots1's expert bias and shared experts (DeepSeek-V2's: no expert bias).
    n += moe ? 1 + 3 * c.experts + (c.arch === "deepseek2" ? 3 : c.arch === "qwen2" || deepSeekMoe(c) ? 4 : 0) : 3
  }
  return n
}
