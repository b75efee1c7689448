/**
 * ModelContext: what the operators of the Mixtral-like model need to know about one rank and
 * one micro-batch, the values that flow between them, and the layouts of their edges.
 *
 * Shape legend: B micro-batch sequences, S sequence length, T = B*S tokens of the micro-batch,
 * H hidden. A rank holds the tokens of its cp chunk (load-balanced positions, batch-major), and
 * under sequence parallelism its tp block of them:
 *
 *   tokens  [tokens T/cp]                       token ids and targets (no tp split)
 *   hidden  [tokens T/cp(/tp), hidden H]         every edge between embedding, blocks, head
 *   loss    []  partial over cp                  this rank's share of the micro-batch loss
 *
 * Sizes declares the model's settings once: train's ModelConfig extends it with the MLP widths.
 */
import type * as GatedActivation from "../tensor/ops/GatedActivation.js"
import type * as LatentAttention from "../attention/LatentAttention.js"
import type * as SelfAttention from "../attention/SelfAttention.js"
import type { Group } from "../comm/Group.js"
import type * as TensorLayout from "../dataflow/TensorLayout.js"
import type * as Dispatcher from "../moe/Dispatcher.js"
import type * as MoeRunState from "../moe/MoeRunState.js"
import type * as MoeSettings from "../moe/MoeSettings.js"
import type * as RopeScaling from "../tensor/ops/RopeScaling.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as MoeStats from "./MoeStats.js"
import type * as RecomputeModules from "./RecomputeModules.js"

/**
 * The model's settings that the forward uses (train's ModelConfig adds the MLP widths).
 * @category models
 */
export interface Sizes {
  readonly vocab: number
  readonly hidden: number
  readonly layers: number
  readonly heads: number
  readonly kvHeads: number
  readonly experts: number
  readonly topk: number
  /** With denseFirst K (absent: 0), layer i is MoE when i >= K and (i - K) % moeEvery === 0 (1: every layer). */
  readonly moeEvery: number
  /** The first denseFirst layers are dense (DeepSeek-V3's first 3); absent: 0 (isMoe). */
  readonly denseFirst?: number | undefined
  readonly seq: number
  /**
   * Separate input and output embeddings (Mixtral-style). Tied by default (GPT-style, as
   * Megatron): the output layer multiplies by the embedding table.
   */
  readonly untieEmbeddings?: boolean | undefined
  /** Shared experts' MLP width in every MoE layer (semantics.md 2.7); none: no shared experts. */
  readonly sharedExpertFfn?: number | undefined
  /** Scales the shared experts' output by sigmoid(x g) per token (needs sharedExpertFfn). */
  readonly sharedExpertGate?: boolean | undefined
  /**
   * The routed experts' input and output width (Megatron's moe_latent_size, Nemotron 3's
   * LatentMoE): each MoE layer projects its tokens hidden -> latent after the router, dispatches,
   * runs and combines them at that width, and projects the result back to hidden (the router and
   * shared experts stay at hidden); none: the experts work at hidden (expertWidthOf).
   */
  readonly moeLatentSize?: number | undefined
  /** The router and MoE-layer options (MoeSettings); none: MoeSettings.defaults with the run's aux coefficient. */
  readonly moe?: MoeSettings.MoeSettings | undefined
  /** Biases on the attention's q, k and v (Qwen-style, initialized to zero); absent or false: none. */
  readonly qkvBias?: boolean | undefined
  /**
   * Biases on the attention's output projection and on both projections of every MLP (dense,
   * shared and routed experts), from zero (Megatron's add_bias_linear, GPT-OSS's); absent or
   * false: none. (--add-bias-linear also sets qkvBias, as Megatron's linear_qkv has one.)
   */
  readonly linearBias?: boolean | undefined
  /** A bias on the router's logits, from zero (GPT-OSS's router); absent or false: none. */
  readonly routerBias?: boolean | undefined
  /** Each head's width; none: hidden / heads (headDim). */
  readonly headDim?: number | undefined
  /** RMSNorm over each head's q and k before RoPE (Qwen3-style); absent or false: none. */
  readonly qkNorm?: boolean | undefined
  /**
   * qkNorm's RMSNorm over each token's whole q and whole k (every head at once, one weight per
   * column: OLMoE's and OLMo 2's) instead of over each head; absent or false: per head.
   */
  readonly qkNormOverHeads?: boolean | undefined
  /**
   * Every norm's weight zero-centered: stored as w, from 0, and scaling by 1 + w (Megatron's
   * --apply-layernorm-1p; Params' onePlus specs); absent or false: stored as the scale, from 1.
   */
  readonly normOnePlus?: boolean | undefined
  /**
   * Each head's q and k scaled to unit root mean square before RoPE, x / sqrt(mean(x^2) + eps)
   * with no weight (Llama 4's, Megatron's --qk-l2-norm L2Norm); absent or false: none.
   */
  readonly qkL2Norm?: boolean | undefined
  /**
   * Multi-latent attention (DeepSeek-V2/V3, LatentAttention) with these widths, in place of
   * grouped-query attention: kvHeads must equal heads, headDim, qkvBias and qkNorm unused.
   */
  readonly mla?: LatentAttention.LatentSizes | undefined
  /** RoPE's frequency base; none: 10000 (defaultRopeTheta). */
  readonly ropeTheta?: number | undefined
  /**
   * The share of each head's q and k that RoPE rotates (Megatron's --rotary-percent,
   * transformers' partial_rotary_factor: GLM-4.5's 0.5): its first floor(D x share) dimensions,
   * their frequencies over that width; absent: the whole head.
   */
  readonly rotaryPercent?: number | undefined
  /** RoPE's scaling (RopeScaling: YaRN, DeepSeek-V3's factor 40 over 4096; or Llama 3's); none: plain RoPE. */
  readonly ropeScaling?: RopeScaling.Scaling | undefined
  /**
   * Sliding-window attention in every layer: a token attends to the last slidingWindow tokens,
   * itself included (transformers' sliding_window; Megatron's --window-size W-1,0); none: the
   * whole causal context.
   */
  readonly slidingWindow?: number | undefined
  /**
   * With slidingWindow: every N-th layer (layer numbers from 1: N, 2N, ...) attends to its whole
   * causal context instead (Megatron's --window-attn-skip-freq N; GPT-OSS's 2, Gemma 3's 6;
   * windowOf); absent: every layer has the window.
   */
  readonly windowAttnSkipFreq?: number | undefined
  /**
   * Every N-th layer (layer numbers from 1: N, 2N, ...) without RoPE, its q and k unturned
   * (Megatron's --no-rope-freq N: Llama 4's NoPE layers; usesRope); absent: RoPE in every layer.
   */
  readonly noRopeFreq?: number | undefined
  /**
   * The attention softmax (Megatron's --softmax-type): vanilla (absent), off-by-one (one more logit
   * fixed at 0 per row that takes probability and gives no value) or learnable (that logit a
   * parameter per head, `layers.L.sinks`, GPT-OSS's; tensor/ops/AttentionSinks).
   */
  readonly softmaxType?: SoftmaxType | undefined
  /**
   * Multi-token prediction layers after the last (DeepSeek-V3's 1; model/MultiTokenPrediction):
   * layer indices layers .. layers + mtpLayers - 1, on the last stage; absent: none.
   */
  readonly mtpLayers?: number | undefined
  /** The MTP losses' weight in the objective (divided over the depths; absent: 0.1, Megatron's). */
  readonly mtpLossScale?: number | undefined
  /** Every RMSNorm's epsilon; none: 1e-6 (defaultNormEps). */
  readonly normEps?: number | undefined
  /**
   * Every gated MLP's activation, dense, shared and routed experts alike (Megatron's --quick-geglu,
   * --glu-linear-offset and --activation-func-clamp-value; GPT-OSS's alpha 1.702, offset 1, limit
   * 7; tensor/ops/GatedActivation): absent, SwiGLU.
   */
  readonly glu?: GatedActivation.Glu | undefined
}

/**
 * RoPE's base where a model sets none (the RoFormer and Llama 2 value).
 * @category constants
 */
export const defaultRopeTheta = 10000

/**
 * RMSNorm's epsilon where a model sets none.
 * @category constants
 */
export const defaultNormEps = 1e-6

/**
 * The RoPE base of a model.
 * @category getters
 */
export const ropeThetaOf = (s: Sizes): number => s.ropeTheta ?? defaultRopeTheta

/**
 * The RMSNorm epsilon of a model.
 * @category getters
 */
export const normEpsOf = (s: Sizes): number => s.normEps ?? defaultNormEps

/**
 * The groups a rank runs the model with.
 * @category models
 */
export interface Groups {
  readonly tp: Group
  readonly cp: Group
  readonly tpCp: Group
  /** The tp-dp-cp group (needed by global_aux). */
  readonly tpDpCp?: Group | undefined
  readonly expert: Dispatcher.ExpertGroups
}

/**
 * One rank's view of one micro-batch's forward.
 * @category models
 */
export interface ModelContext {
  readonly sizes: Sizes
  /** B: sequences in the micro-batch. */
  readonly microBatch: number
  readonly groups: Groups
  readonly cpRank: number
  /** Token rows split over tp between the tp regions (on whenever tp > 1 in training). */
  readonly sequenceParallel: boolean
  /** M * dp: micro-batches in the global batch (the loss is their mean). */
  readonly microBatchesPerStep: number
  /** The plain aux loss's coefficient when `sizes.moe` does not give the losses. */
  readonly auxLossCoeff: number
  /** This rank's MoE state across the global batch (needed by global_aux). */
  readonly moeState?: MoeRunState.MoeRunState | undefined
  /** Parameters by name (leaves on the micro-batch's tape). */
  readonly param: (name: string) => Tensor.Tensor
  /**
   * What the backward recomputes instead of keeping (tensor/Recompute): nothing (default), the
   * modules of recomputeModules (selective), or every attention and FFN half (full).
   */
  readonly recompute?: "none" | "selective" | "full" | undefined
  /** The modules selective recompute recomputes (RecomputeModules; its defaults when absent). */
  readonly recomputeModules?: ReadonlyArray<RecomputeModules.RecomputeModule> | undefined
  /** The documents packed into the micro-batch's sequences, at this rank's rows (none: one a sequence). */
  readonly documents?: SelfAttention.Documents | undefined
  /** A forward of an evaluation, not of training (Sinkhorn routing selects without balancing there). */
  readonly evaluating?: boolean | undefined
  /**
   * Each of this cp rank's rows' place in the data stream (its sequence's index x seq + its
   * position): the same token under every mapping; given where the router's input jitter draws from it.
   */
  readonly tokenPlaces?: Float64Array | undefined
  /** The token id of each of the rank's rows, as tokenPlaces lays them out (hash routing only). */
  readonly tokenIds?: Int32Array | undefined
  /** The micro-batch's first sequence's index in the data stream (its identity on every rank). */
  readonly firstSequence?: number | undefined
  /** Routing replay or recording (--routing-replay, --routing-record), by the rows' tokenPlaces. */
  readonly routing?: RoutingSite | undefined
}

/**
 * Where the MoE layers' routing comes from or goes to, by each row's place in the data stream
 * (ModelContext.tokenPlaces): Megatron-Core's routing replay (semantics.md 2.1.10).
 * @category models
 */
export interface RoutingSite {
  /** The experts to route these rows to at `layer`, [rows * K] best first (replay); absent: the router selects. */
  readonly replayed?: ((layer: number, places: Float64Array) => Int32Array) | undefined
  /** Keeps the experts the router chose for these rows at `layer`, [rows * K], before any dropping. */
  readonly record?: ((layer: number, places: Float64Array, experts: Int32Array) => void) | undefined
}

/**
 * The target of a position with nothing to predict, which the losses leave out (their ignore
 * index): past a sequence's end for multi-token prediction, after an end-of-document token with
 * --eod-mask-loss.
 * @category models
 */
export const ignoredTarget = -100

/**
 * How many of `targets` a loss keeps (those not ignoredTarget).
 * @category mapping
 */
export const keptTargets = (targets: Int32Array): number => {
  let kept = 0
  for (const t of targets) if (t !== ignoredTarget) kept++
  return kept
}

/**
 * This rank's token ids and targets of the micro-batch (its cp rows, batch-major).
 * @category models
 */
export interface Tokens {
  readonly ids: Int32Array
  readonly targets: Int32Array
  /**
   * This rank's rows of the micro-batch's sequences shifted left by k (the ids zero-filled and
   * the targets ignored past each sequence's end: MultiTokenPrediction.shifted of the whole
   * micro-batch, then this cp rank's rows); absent: the rows are whole sequences (cp 1).
   */
  readonly shifted?: ((k: number) => Tokens) | undefined
  /**
   * The micro-batch's targets that are not ignored, on every cp rank: a loss is the mean over
   * them, each rank's share its rows' sum over this count (absent: all B*S are kept).
   */
  readonly labels?: number | undefined
  /**
   * With --calculate-per-token-loss: the kept targets of the whole step (every micro-batch of
   * every dp rank); a loss is then this rank's rows' sum over this count, not a mean of means.
   */
  readonly stepLabels?: number | undefined
}

/**
 * Hidden rows in their layout, with the aux-loss terms and expert loads gathered so far.
 * @category models
 */
export interface Activations extends TensorLayout.WithLayout {
  readonly aux: Tensor.Tensor
  /** Rows each local expert processed, per MoE layer run so far. */
  readonly expertRows: ReadonlyArray<ReadonlyArray<number>>
  /** What each MoE layer run so far measured (parallel to expertRows). */
  readonly moeStats?: ReadonlyArray<MoeStats.MoeStats>
}

/**
 * The activations with new rows in `layout`, the rest carried over. Written out field by field:
 * `{ ...x, tensor, layout }` would make a new hidden class at every call (TensorLayout.ts, fields).
 * @category combinators
 */
export const withRows = (x: Activations, tensor: Tensor.Tensor, layout: TensorLayout.TensorLayout): Activations =>
  x.moeStats === undefined ? { tensor, layout, aux: x.aux, expertRows: x.expertRows } : { tensor, layout, aux: x.aux, expertRows: x.expertRows, moeStats: x.moeStats }

/**
 * Head dim.
 * @category mapping
 */
export const headDim = (s: Pick<Sizes, "hidden" | "heads" | "headDim">): number => s.headDim ?? s.hidden / s.heads

/**
 * The width RoPE rotates of each head (rotaryPercent's floor(D x share), Megatron's int(); D without it).
 * @category mapping
 */
export const rotaryDim = (s: Pick<Sizes, "hidden" | "heads" | "headDim" | "rotaryPercent">): number => Math.floor(headDim(s) * (s.rotaryPercent ?? 1))

/**
 * The width the routed experts take and give: the latent width of a LatentMoE, else hidden.
 * @category mapping
 */
export const expertWidthOf = (s: Pick<Sizes, "hidden" | "moeLatentSize">): number => s.moeLatentSize ?? s.hidden

/**
 * Whether layer i is an MoE layer: the first `denseFirst` layers are dense, and from there every
 * `moeEvery`-th layer is MoE (layer K, K + N, K + 2N, ...; K = 0, N = 1: every layer). A
 * multi-token prediction layer (index `layers` and up, where `layers` is given) is MoE as the
 * last layer is (Megatron's rule). The one rule the model, the checkpoint export and import, the
 * statistics and the planner place MoE layers by.
 * @category guards
 */
export const isMoe = (s: Pick<Sizes, "moeEvery" | "denseFirst"> & { readonly layers?: number }, layer: number): boolean => {
  const first = s.denseFirst ?? 0
  const at = s.layers !== undefined && layer >= s.layers ? s.layers - 1 : layer
  return at >= first && (at - first) % s.moeEvery === 0
}

/**
 * Whether layer i routes by its tokens' ids (HashRouting: the MoE layers among the first
 * `moe.hashLayers`, Megatron-Core's layer_number <= moe_n_hash_layers); multi-token prediction
 * layers never do (Megatron's rule).
 * @category guards
 */
export const isHashed = (s: Pick<Sizes, "moeEvery" | "denseFirst" | "layers" | "moe">, layer: number): boolean =>
  layer < Math.min(s.layers, s.moe?.hashLayers ?? 0) && isMoe(s, layer)

/**
 * The attention window of layer i (undefined: its whole causal context): slidingWindow, except
 * that with windowAttnSkipFreq N the layers numbered N, 2N, ... counting from 1 (indices N - 1,
 * 2N - 1, ...) attend to their whole context (Megatron's is_layer_window_attention). A
 * multi-token prediction layer attends as the last layer does (as isMoe places it; Megatron's
 * MTP layer takes its number from where its pipeline stage starts, a quirk not followed). The
 * one rule the model and the planner place windows by.
 * @category guards
 */
export const windowOf = (s: Pick<Sizes, "slidingWindow" | "windowAttnSkipFreq" | "layers">, layer: number): number | undefined => {
  const window = s.slidingWindow
  const skip = s.windowAttnSkipFreq
  if (window === undefined || skip === undefined) return window
  const at = Math.min(layer, s.layers - 1)
  return (at + 1) % skip === 0 ? undefined : window
}

/**
 * Whether layer i turns q and k by RoPE: every layer, except that with noRopeFreq N the layers
 * numbered N, 2N, ... counting from 1 do not (Megatron's no_rope_freq pattern). A multi-token
 * prediction layer (past the last) keeps RoPE.
 * @category guards
 */
export const usesRope = (s: Pick<Sizes, "noRopeFreq" | "layers">, layer: number): boolean => s.noRopeFreq === undefined || layer >= s.layers || (layer + 1) % s.noRopeFreq !== 0

/**
 * The attention softmax: vanilla; off-by-one (a logit fixed at 0 in every row that takes
 * probability and gives no value: a softmax sink); learnable (that logit a parameter per head).
 * @category models
 */
export type SoftmaxType = "vanilla" | "off-by-one" | "learnable"

/**
 * The softmax types.
 * @category constants
 */
export const softmaxTypes = ["vanilla", "off-by-one", "learnable"] as const

/**
 * The multi-token prediction layers of a model (0 without).
 * @category getters
 */
export const mtpLayersOf = (s: Pick<Sizes, "mtpLayers">): number => s.mtpLayers ?? 0

/**
 * The default weight of the MTP losses (Megatron's --mtp-loss-scaling-factor).
 * @category constants
 */
export const defaultMtpLossScale = 0.1
