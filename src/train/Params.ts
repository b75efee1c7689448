/**
 * Params: every parameter of the model by name, its global shape, how it is sharded over the
 * mapping, and how its initial value is drawn (its std; the values themselves: ParamInit, from
 * the seed and the name alone, the same on every mapping). Each rank materializes only the
 * shards it holds.
 *
 * Sharding kinds (vocab and heads are split over the attention tp group; experts over ep and
 * their hidden units over etp):
 *   replicated   every rank of the stage holds it (norms, router)
 *   rows/tp      dim 0 split over tp (embedding: vocab; wo and the dense wDown: input units;
 *                the q, k, v biases of --qkv-bias: heads)
 *   cols/tp      dim 1 split over tp (wq, wk, wv, dense wGate/wUp, output: vocab)
 *   expert-cols  dim 0 over ep (local experts), dim 2 over etp (expert wGate/wUp)
 *   expert-rows  dim 0 over ep, dim 1 over etp (expert wDown; the experts' biases [E, width]
 *                of --add-bias-linear: fc1's over its hidden units, fc2's over the output's
 *                columns, each ETP member adding its columns to its partial sum)
 * Gradient groups: dense parameters sum over dp-cp (and, for replicated ones under sequence
 * parallelism, over tp); expert parameters sum over edp.
 *
 * Embeddings are tied by default (GPT-style, as Megatron): there is no `output` parameter, the
 * output layer multiplies by the embedding table transposed (its rows/tp vocabulary split is the
 * output's cols/tp split, so the vocab-parallel cross-entropy is unchanged). The embedding is
 * then held by the first stage and, when pp > 1, by the last stage too: a copy under the same
 * name, initialised from the same seed, whose gradient is summed with the first stage's over the
 * embedding group (RankParams), so both take the same steps. `untieEmbeddings` gives the
 * separate `output` [H, vocab] of Mixtral-style models. The tied table starts with the output
 * layer's standard deviation (0.5 / sqrt(H)), not the untied embedding's 1: as the output layer,
 * values of std 1 start the loss far above ln(vocab) (30 against 3.5 on the default model).
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import type * as Folding from "../mapping/Folding.js"
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as ModelContext from "../model/ModelContext.js"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as ModelConfig from "./ModelConfig.js"

/**
 * How a parameter is split.
 * @category models
 */
export type Sharding = "replicated" | "rows/tp" | "cols/tp" | "expert-cols" | "expert-rows"

/**
 * One parameter of the model.
 * @category models
 */
export interface ParamSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly sharding: Sharding
  /** Standard deviation of the initial values (0: ones, for norms). */
  readonly std: number
  /** Starts at zero whatever `std` (biases). */
  readonly zero?: boolean
  /** A bias (no weight decay, as Megatron's biases, whatever its shape: the experts' are [E, width]). */
  readonly bias?: boolean
  /**
   * Writes into the residual stream (the attention's output projection, the MLPs' down
   * projections): Megatron's output_layer_init_method scales its std by 1 / sqrt(2 L)
   * (InitMethod.withStd).
   */
  readonly residual?: boolean
  /** The layer it belongs to, or -1 (embedding), L (final norm and output). */
  readonly layer: number
  /**
   * A zero-centered norm weight (--apply-layernorm-1p): it starts at zero (`zero`) and the model
   * reads it as 1 + w (ChunkRun).
   */
  readonly onePlus?: boolean
  /**
   * The embedding where the last stage uses it too, so holds a copy (summed over the embedding
   * group): as the output layer (tied), or for the multi-token prediction layers' tokens.
   */
  readonly tied?: boolean
}

/** Grouped-query attention's projections of layer `l` (prefix `p`). */
const groupedQueryAttention = (m: ModelConfig.ModelConfig, p: string, l: number, std: number): Array<ParamSpec> => {
  const h = m.hidden
  const d = ModelContext.headDim(m)
  return [
    { name: `${p}wq`, shape: [h, m.heads * d], sharding: "cols/tp", std, layer: l },
    { name: `${p}wk`, shape: [h, m.kvHeads * d], sharding: "cols/tp", std, layer: l },
    { name: `${p}wv`, shape: [h, m.kvHeads * d], sharding: "cols/tp", std, layer: l },
    { name: `${p}wo`, shape: [m.heads * d, h], sharding: "rows/tp", std, residual: true, layer: l },
  ]
}

/**
 * Multi-latent attention's projections and latent norms of layer `l` (LatentAttention): the down
 * projections and norms replicated, the up projections split over tp by heads (columns), wo by
 * rows.
 */
const latentAttention = (m: ModelConfig.ModelConfig, s: LatentAttention.LatentSizes, p: string, l: number, std: number): Array<ParamSpec> => {
  const h = m.hidden
  const q = m.heads * (s.qkHeadDim + s.qkPosEmbHeadDim)
  return [
    ...(s.qLoraRank > 0
      ? ([
          { name: `${p}wqA`, shape: [h, s.qLoraRank], sharding: "replicated", std, layer: l },
          { name: `${p}qANorm`, shape: [s.qLoraRank], sharding: "replicated", std: 0, layer: l },
          { name: `${p}wqB`, shape: [s.qLoraRank, q], sharding: "cols/tp", std, layer: l },
        ] as const)
      : ([{ name: `${p}wq`, shape: [h, q], sharding: "cols/tp", std, layer: l }] as const)),
    { name: `${p}wkvA`, shape: [h, s.kvLoraRank + s.qkPosEmbHeadDim], sharding: "replicated", std, layer: l },
    { name: `${p}kvANorm`, shape: [s.kvLoraRank], sharding: "replicated", std: 0, layer: l },
    { name: `${p}wkvB`, shape: [s.kvLoraRank, m.heads * (s.qkHeadDim + s.vHeadDim)], sharding: "cols/tp", std, layer: l },
    { name: `${p}wo`, shape: [m.heads * s.vHeadDim, h], sharding: "rows/tp", std, residual: true, layer: l },
  ]
}

/** A bias of --add-bias-linear or --router-bias: from zero, no weight decay. */
const biasSpec = (name: string, shape: ReadonlyArray<number>, sharding: Sharding, layer: number): ParamSpec => ({ name, shape, sharding, std: 0, zero: true, bias: true, layer })

/**
 * A dense MLP's biases under --add-bias-linear (prefix `p`, width `f`): fc1's halves split over
 * tp as their columns are, fc2's [H] replicated (added once the row-parallel product is summed).
 */
const mlpBiases = (m: ModelConfig.ModelConfig, p: string, f: number, layer: number): Array<ParamSpec> =>
  m.linearBias === true ? [biasSpec(`${p}bGate`, [f], "rows/tp", layer), biasSpec(`${p}bUp`, [f], "rows/tp", layer), biasSpec(`${p}bDown`, [m.hidden], "replicated", layer)] : []

/**
 * A LatentMoE layer's projections (--moe-latent-size L): latentIn [H, L] after the router,
 * latentOut [L, H] after the combine (a down projection into the residual stream, as the
 * experts' wDown), each replicated like the router (Megatron's "duplicated" linears: every rank
 * projects its own rows), with their biases under --add-bias-linear; none without a latent.
 */
const latentProjections = (m: ModelConfig.ModelConfig, p: string, tag: number, std: number): Array<ParamSpec> => {
  const l = m.moeLatentSize
  if (l === undefined) return []
  return [
    { name: `${p}latentIn`, shape: [m.hidden, l], sharding: "replicated", std, layer: tag },
    { name: `${p}latentOut`, shape: [l, m.hidden], sharding: "replicated", std: std / 2, residual: true, layer: tag },
    ...(m.linearBias === true ? [biasSpec(`${p}latentInBias`, [l], "replicated", tag), biasSpec(`${p}latentOutBias`, [m.hidden], "replicated", tag)] : []),
  ]
}

/**
 * The parameters of the block `layers.{l}` (attention, norms, and the MoE layer or dense MLP as
 * ModelContext.isMoe says), tagged with the layer `tag` (the stage that holds them).
 */
const blockSpecs = (m: ModelConfig.ModelConfig, l: number, tag: number, std: number): Array<ParamSpec> => {
  const h = m.hidden
  // The routed experts' width: hidden, or a LatentMoE's latent.
  const x = ModelContext.expertWidthOf(m)
  const d = ModelContext.headDim(m)
  const p = `layers.${l}.`
  const out: Array<ParamSpec> = [
    { name: `${p}attentionNorm`, shape: [h], sharding: "replicated", std: 0, layer: tag },
    ...(m.mla === undefined ? groupedQueryAttention(m, p, tag, std) : latentAttention(m, m.mla, p, tag, std)),
    // q, k, v biases (Qwen-style): vectors over the heads, split over tp as the heads are.
    ...(m.qkvBias === true
      ? (
          [
            ["bq", m.heads],
            ["bk", m.kvHeads],
            ["bv", m.kvHeads],
          ] as const
        ).map(([name, heads]): ParamSpec => ({ name: `${p}${name}`, shape: [heads * d], sharding: "rows/tp", std, zero: true, layer: tag }))
      : []),
    // The output projection's bias (--add-bias-linear): replicated, added once wo's partial products are summed.
    ...(m.linearBias === true ? [biasSpec(`${p}bo`, [h], "replicated", tag)] : []),
    // Learnable softmax sinks (GPT-OSS): one logit per head, split over tp as the heads are; from 0.
    ...(m.softmaxType === "learnable" ? [{ name: `${p}sinks`, shape: [m.heads], sharding: "rows/tp" as const, std: 1, zero: true, layer: tag }] : []),
    // q and k norms (Qwen3-style): one weight over a head's width, shared by every head; over the
    // heads (OLMoE-style): one weight per column of q and of k, split over tp as the heads are.
    ...(m.qkNorm === true
      ? (
          [
            ["qNorm", m.heads],
            ["kNorm", m.kvHeads],
          ] as const
        ).map(
          ([name, heads]): ParamSpec =>
            m.qkNormOverHeads === true
              ? { name: `${p}${name}`, shape: [heads * d], sharding: "rows/tp", std: 0, layer: tag }
              : { name: `${p}${name}`, shape: [d], sharding: "replicated", std: 0, layer: tag },
        )
      : []),
    { name: `${p}ffnNorm`, shape: [h], sharding: "replicated", std: 0, layer: tag },
  ]
  if (!ModelContext.isMoe(m, l))
    return [
      ...out,
      { name: `${p}wGate`, shape: [h, m.ffn], sharding: "cols/tp", std, layer: tag },
      { name: `${p}wUp`, shape: [h, m.ffn], sharding: "cols/tp", std, layer: tag },
      { name: `${p}wDown`, shape: [m.ffn, h], sharding: "rows/tp", std: std / 2, residual: true, layer: tag },
      ...mlpBiases(m, p, m.ffn, tag),
    ]
  out.push(
    { name: `${p}router`, shape: [h, m.experts], sharding: "replicated", std, layer: tag },
    ...(m.routerBias === true ? [biasSpec(`${p}routerBias`, [m.experts], "replicated", tag)] : []),
    ...latentProjections(m, p, tag, std),
    { name: `${p}experts.wGate`, shape: [m.experts, x, m.moeFfn], sharding: "expert-cols", std, layer: tag },
    { name: `${p}experts.wUp`, shape: [m.experts, x, m.moeFfn], sharding: "expert-cols", std, layer: tag },
    { name: `${p}experts.wDown`, shape: [m.experts, m.moeFfn, x], sharding: "expert-rows", std: std / 2, residual: true, layer: tag },
    ...(m.linearBias === true
      ? [
          biasSpec(`${p}experts.bGate`, [m.experts, m.moeFfn], "expert-rows", tag),
          biasSpec(`${p}experts.bUp`, [m.experts, m.moeFfn], "expert-rows", tag),
          biasSpec(`${p}experts.bDown`, [m.experts, x], "expert-rows", tag),
        ]
      : []),
  )
  // Shared experts: a dense MLP on the attention tp group, and its gate [H, 1].
  const f = m.sharedExpertFfn
  if (f !== undefined)
    out.push(
      { name: `${p}shared.wGate`, shape: [h, f], sharding: "cols/tp", std, layer: tag },
      { name: `${p}shared.wUp`, shape: [h, f], sharding: "cols/tp", std, layer: tag },
      { name: `${p}shared.wDown`, shape: [f, h], sharding: "rows/tp", std: std / 2, residual: true, layer: tag },
      ...mlpBiases(m, `${p}shared.`, f, tag),
      ...(m.sharedExpertGate === true ? [{ name: `${p}shared.gate`, shape: [h, 1], sharding: "replicated" as const, std, layer: tag }] : []),
    )
  return out
}

/**
 * Every parameter of the model, in a fixed order.
 * @category constructors
 */
export const specs = (m: ModelConfig.ModelConfig): Array<ParamSpec> => {
  const h = m.hidden
  const std = 0.5 / Math.sqrt(h)
  const tied = m.untieEmbeddings !== true
  const mtp = ModelContext.mtpLayersOf(m)
  // The last stage also holds the embedding where it uses it: as the output layer (tied), or to
  // embed the MTP layers' shifted tokens.
  const alsoLast = tied || mtp > 0
  const out: Array<ParamSpec> = [{ name: "embedding", shape: [m.vocab, h], sharding: "rows/tp", std: tied ? std : 1, layer: -1, ...(alsoLast ? { tied: true } : {}) }]
  for (let l = 0; l < m.layers; l++) out.push(...blockSpecs(m, l, l, std))
  // Multi-token prediction layers (MultiTokenPrediction): each joins the normed embedding of the
  // shifted tokens and the normed hidden rows ([2H] -> H, replicated), runs a block, and norms
  // its output for the shared output layer; all on the last stage (layer tag L).
  for (let l = m.layers; l < m.layers + mtp; l++) {
    const p = `layers.${l}.`
    out.push(
      { name: `${p}enorm`, shape: [h], sharding: "replicated", std: 0, layer: m.layers },
      { name: `${p}hnorm`, shape: [h], sharding: "replicated", std: 0, layer: m.layers },
      { name: `${p}ehProj`, shape: [2 * h, h], sharding: "replicated", std: std / Math.SQRT2, layer: m.layers },
      ...blockSpecs(m, l, m.layers, std),
      { name: `${p}finalNorm`, shape: [h], sharding: "replicated", std: 0, layer: m.layers },
    )
  }
  out.push({ name: "finalNorm", shape: [h], sharding: "replicated", std: 0, layer: m.layers })
  if (!tied) out.push({ name: "output", shape: [h, m.vocab], sharding: "cols/tp", std, layer: m.layers })
  // Zero-centered norms: every norm weight (std 0 without `zero`: ones otherwise) from zero, read as 1 + w.
  if (m.normOnePlus !== true) return out
  // once a job: the model's specs
  return out.map((s) => (s.std === 0 && s.zero !== true ? { ...s, zero: true, onePlus: true } : s))
}

/**
 * What a pipeline rank runs: whether it holds the first stage, the last stage, and its chunks'
 * layers.
 * @category models
 */
export interface StagesHeld {
  readonly first: boolean
  readonly last: boolean
  readonly chunks: ReadonlyArray<{ readonly start: number; readonly end: number }>
}

/**
 * Whether a rank running `stages` of a model of `layers` layers holds a parameter: the
 * embedding on the first stage (and its tied copy on the last), the final norm and output on
 * the last, a layer's parameters where its chunk runs.
 * @category guards
 */
export const isHeld = (spec: ParamSpec, layers: number, stages: StagesHeld): boolean => {
  if (spec.layer === -1) return stages.first || (spec.tied === true && stages.last)
  if (spec.layer === layers) return stages.last
  return stages.chunks.some((c) => spec.layer >= c.start && spec.layer < c.end)
}

/**
 * Calls `copy(from, to, length)` for each contiguous run of the region `ranges` of a row-major
 * tensor of `shape`: `from` is the run's flat offset in the whole, `to` in the region (rows of
 * the innermost dim, merged when they are whole rows), in increasing `from`.
 * @category mapping
 */
export const forEachRun = (shape: ReadonlyArray<number>, ranges: ReadonlyArray<readonly [number, number]>, copy: (from: number, to: number, length: number) => void): void => {
  const region = ranges.map(([a, b]) => b - a)
  const total = Tensor.sizeOf(region)
  if (total === 0) return
  // Merge trailing dims the region covers whole: one run spans all of them.
  let inner = shape.length
  let run = 1
  while (inner > 0) {
    const d = inner - 1
    run *= region[d] as number
    inner = d
    const [a, b] = ranges[d] as [number, number]
    if (a !== 0 || b !== shape[d]) break
  }
  const strides = shape.map((_, i) => Tensor.sizeOf(shape.slice(i + 1)))
  const idx = new Array<number>(inner).fill(0)
  for (let to = 0; to < total; to += run) {
    let from = 0
    for (let i = 0; i < shape.length; i++) from += ((ranges[i] as [number, number])[0] + (i < inner ? (idx[i] as number) : 0)) * (strides[i] as number)
    copy(from, to, run)
    for (let i = inner - 1; i >= 0; i--) {
      idx[i] = (idx[i] as number) + 1
      if ((idx[i] as number) < (region[i] as number)) break
      idx[i] = 0
    }
  }
}

/**
 * Which slice of the global tensor a rank holds: per dim, [start, end).
 * @category mapping
 */
export const sliceOf = (spec: ParamSpec, place: Folding.RankPlace, sizes: ParallelConfig.Sizes): Array<[number, number]> => {
  const full = spec.shape.map((d): [number, number] => [0, d])
  const part = (dim: number, index: number, parts: number) => {
    const d = spec.shape[dim] as number
    full[dim] = [(index * d) / parts, ((index + 1) * d) / parts]
  }
  switch (spec.sharding) {
    case "rows/tp":
      part(0, place.tp, sizes.tp)
      break
    case "cols/tp":
      part(1, place.tp, sizes.tp)
      break
    case "expert-cols":
      part(0, place.ep, sizes.ep)
      part(2, place.etp, sizes.etp)
      break
    case "expert-rows":
      part(0, place.ep, sizes.ep)
      part(1, place.etp, sizes.etp)
      break
    default:
      break
  }
  return full
}

/**
 * The slice of a tensor given per-dim ranges (a copy, contiguous).
 * @category mapping
 */
export const slice = (t: Tensor.Tensor, ranges: ReadonlyArray<[number, number]>): Tensor.Tensor => {
  const shape = ranges.map(([a, b]) => b - a)
  const out = DType.allocateUninitialized(t.dtype, Tensor.sizeOf(shape))
  forEachRun(t.shape, ranges, (from, to, length) => out.set(t.data.subarray(from, from + length), to))
  return Tensor.fromStorage(out, shape)
}

/**
 * Writes `part` into `t` at the given ranges (the inverse of `slice`).
 * @category mapping
 */
const place = (t: Tensor.Tensor, ranges: ReadonlyArray<[number, number]>, part: Tensor.Tensor): void =>
  forEachRun(t.shape, ranges, (from, to, length) => t.data.set(part.data.subarray(to, to + length), from))

/**
 * The full tensor of a parameter from shards that cover it (each a slice as `sliceOf` gives,
 * with its values): the inverse of cutting with `slice`. Replicas of one slice write the same
 * region; the last one given wins. Throws a RangeError when the shards leave part of it uncovered.
 * @category mapping
 */
export const assemble = (
  shape: ReadonlyArray<number>,
  dtype: DType.DType,
  shards: Iterable<{ readonly slice: ReadonlyArray<[number, number]>; readonly values: DType.Storage }>,
): Tensor.Tensor => {
  const out = Tensor.zeros(shape, { dtype })
  let covered = 0
  const seen = new Set<string>()
  for (const shard of shards) {
    const key = JSON.stringify(shard.slice)
    const part = Tensor.fromStorage(
      shard.values,
      shard.slice.map(([a, b]) => b - a),
    )
    place(out, shard.slice, part)
    if (!seen.has(key)) covered += part.size
    seen.add(key)
  }
  if (covered !== out.size) throw new RangeError(`shards cover ${covered} of the ${out.size} elements of a [${shape.join(", ")}] parameter`)
  return out
}

/**
 * Whether gradients of this parameter are expert gradients (summed over edp, not dp-cp).
 * @category guards
 */
export const isExpert = (spec: ParamSpec): boolean => spec.sharding === "expert-cols" || spec.sharding === "expert-rows"
