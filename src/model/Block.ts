/**
 * Block: one transformer layer as two operators on the hidden rows,
 *
 *   attention   x -> x + SelfAttention(RMSNorm(x))
 *   ffn         h -> h + FFN(RMSNorm(h))       FFN: the MoE layer, or the dense SwiGLU MLP
 *
 * each declaring the model's hidden layout on both edges. Inside, the tensor-parallel parts
 * enter the tp region (allgather of the SP rows, or a copy) and leave it through a row-parallel
 * product (reduce-scatter back to SP rows, or an allreduce), all typed channels; the operator
 * takes its output layout from what they return, so a body run with the wrong
 * sequence-parallel setting fails at its own output edge. The MoE layer views the rows as a
 * batch of tokens (no communication to switch layouts, paper section 3.2); its dispatch
 * permutes them into expert order and its combine returns every token to its row, checked
 * (RoutedLayout), so token-permuted rows never leave the layer.
 */
import * as Effect from "effect/Effect"
import * as LatentAttention from "../attention/LatentAttention.js"
import * as SelfAttention from "../attention/SelfAttention.js"
import * as DenseMlp from "../dataflow/DenseMlp.js"
import * as Operator from "../dataflow/Operator.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Comm from "../comm/Communicator.js"
import * as Group from "../comm/Group.js"
import * as MoeLayer from "../moe/MoeLayer.js"
import * as ForcedBalance from "../moe/ForcedBalance.js"
import * as HashRouting from "../moe/HashRouting.js"
import type * as LatentProjection from "../moe/LatentProjection.js"
import * as MoeRunState from "../moe/MoeRunState.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as RoutingMap from "../moe/RoutingMap.js"
import { add } from "../tensor/ops/Elementwise.js"
import { rmsNorm } from "../tensor/ops/Norm.js"
import { concat, reshape, split } from "../tensor/ops/Shape.js"
import * as Recompute from "../tensor/Recompute.js"
import * as Tensor from "../tensor/Tensor.js"
import * as ModelContext from "./ModelContext.js"
import * as RecomputeModules from "./RecomputeModules.js"

/**
 * The norms and attention weights of a block; the FFN comes as a function.
 * @category models
 */
export interface BlockWeights {
  readonly attentionNorm: Tensor.Tensor
  readonly attention: SelfAttention.AttentionWeights
  readonly ffnNorm: Tensor.Tensor
}

/**
 * x + SelfAttention(RMSNorm(x)).
 */
const attend = (x: Tensor.Tensor, norm: Tensor.Tensor, w: SelfAttention.AttentionWeights, attention: SelfAttention.AttentionConfig, cpRank: number, eps: number) =>
  Effect.map(SelfAttention.forward(rmsNorm(x, norm, eps), w, attention, cpRank), (attended) => add(x, attended))

/**
 * h + ffn(RMSNorm(h)); `ffn` maps the normed tokens [rows, H] to [rows, H].
 */
const feedForward = <E, R>(h: Tensor.Tensor, norm: Tensor.Tensor, ffn: (tokens: Tensor.Tensor) => Effect.Effect<Tensor.Tensor, E, R>, eps: number) =>
  Effect.map(ffn(rmsNorm(h, norm, eps)), (out) => add(h, out))

/**
 * One whole layer as a function on plain tensors (the operators below are its checked form);
 * `eps` is the norms' epsilon.
 * @category combinators
 */
export const forward = <E, R>(
  x: Tensor.Tensor,
  w: BlockWeights,
  attention: SelfAttention.AttentionConfig,
  cpRank: number,
  ffn: (tokens: Tensor.Tensor) => Effect.Effect<Tensor.Tensor, E, R>,
  eps = ModelContext.defaultNormEps,
) => Effect.flatMap(attend(x, w.attentionNorm, w.attention, attention, cpRank, eps), (h) => feedForward(h, w.ffnNorm, ffn, eps))

const weightsOf = (c: ModelContext.ModelContext, layer: number) => (name: string) => c.param(`layers.${layer}.${name}`)

/**
 * The attention half of layer `layer`; `hidden` is the layout the model declares on its edges.
 * @category constructors
 */
export const attention = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout) =>
  Operator.laid(`attention (layer ${layer})`, { input: hidden, output: hidden }, (x: ModelContext.Activations) => Effect.gen(() => attentionSteps(c, layer, x)))

/**
 * The attention half's body. This and the other bodies here are generator functions defined
 * once, not per run: one made per run gives its generator objects a map of their own, a
 * stub-cache miss at every step of Effect's loop (bench/README.md, train suite, twenty-sixth
 * and twenty-seventh sessions).
 */
function* attentionSteps(c: ModelContext.ModelContext, layer: number, x: ModelContext.Activations) {
  const p = weightsOf(c, layer)
  const config: SelfAttention.AttentionConfig = {
    batch: c.microBatch,
    seq: c.sizes.seq,
    heads: c.sizes.heads,
    kvHeads: c.sizes.kvHeads,
    headDim: ModelContext.headDim(c.sizes),
    tp: c.groups.tp,
    cp: c.groups.cp,
    sequenceParallel: c.sequenceParallel,
    recomputeCore: RecomputeModules.recomputes(c, "core_attn"),
    ropeTheta: ModelContext.ropeThetaOf(c.sizes),
    rotaryDim: ModelContext.rotaryDim(c.sizes),
    ropeScaling: c.sizes.ropeScaling,
    noRope: !ModelContext.usesRope(c.sizes, layer),
    documents: c.documents,
    slidingWindow: ModelContext.windowOf(c.sizes, layer),
    sinks: sinksOf(c, p),
  }
  const eps = ModelContext.normEpsOf(c.sizes)
  const mla = c.sizes.mla
  const attend =
    mla === undefined
      ? groupedQuery(p, c.sizes, eps, config, c.cpRank)
      : (rows: TensorLayout.WithLayout) =>
          LatentAttention.forwardLaid(rows, latentWeights(p, mla, eps), LatentAttention.configOf(config, mla, RecomputeModules.recomputes(c, "mla_up_proj")), c.cpRank)
  const norm = p("attentionNorm")
  // The layout the typed collectives of the attention made of the input's.
  let layout = x.layout
  const half = (input: Tensor.Tensor) =>
    Effect.map(attend(TensorLayout.attach(rmsNorm(input, norm, eps), x.layout)), (a) => {
      layout = a.layout
      return add(input, a.tensor)
    })
  const tensor = yield* recomputedIfFull(c, `attention (layer ${layer})`, x.tensor, half)
  return ModelContext.withRows(x, tensor, layout)
}

/**
 * The layer's softmax sinks: the learnable ones (its `sinks`, this rank's heads), zeros for
 * off-by-one (on the parameters' device), none for the vanilla softmax.
 */
const sinksOf = (c: ModelContext.ModelContext, p: (name: string) => Tensor.Tensor): Tensor.Tensor | undefined => {
  const type = c.sizes.softmaxType
  if (type === "learnable") return p("sinks")
  if (type !== "off-by-one") return undefined
  const like = p("attentionNorm")
  return Tensor.zeros([c.sizes.heads / c.groups.tp.ranks.length], { dtype: like.dtype, device: like.device })
}

/** Grouped-query attention of a layer whose parameters `p` names, on laid rows. */
const groupedQuery = (p: (name: string) => Tensor.Tensor, sizes: ModelContext.Sizes, eps: number, config: SelfAttention.AttentionConfig, cpRank: number) => {
  const weights = {
    wq: p("wq"),
    wk: p("wk"),
    wv: p("wv"),
    wo: p("wo"),
    bias: sizes.qkvBias === true ? { q: p("bq"), k: p("bk"), v: p("bv") } : undefined,
    bo: sizes.linearBias === true ? p("bo") : undefined,
    norm:
      sizes.qkNorm === true
        ? { q: p("qNorm"), k: p("kNorm"), eps, overHeads: sizes.qkNormOverHeads === true }
        : sizes.qkL2Norm === true
          ? unitNorm(p("wq"), ModelContext.headDim(sizes), eps)
          : undefined,
  }
  return (rows: TensorLayout.WithLayout) => SelfAttention.forwardLaid(rows, weights, config, cpRank)
}

/** --qk-l2-norm's norm of q and k: RMSNorm with a weight of ones (Megatron's L2Norm), not a parameter. */
const unitNorm = (like: Tensor.Tensor, d: number, eps: number) => {
  const ones = Tensor.full([d], 1, { dtype: like.dtype, device: like.device })
  return { q: ones, k: ones, eps }
}

/** Multi-latent attention's weights of a layer whose parameters `p` names (Params' names). */
const latentWeights = (p: (name: string) => Tensor.Tensor, mla: LatentAttention.LatentSizes, eps: number): LatentAttention.LatentWeights => ({
  query: mla.qLoraRank > 0 ? { wqA: p("wqA"), qANorm: p("qANorm"), wqB: p("wqB") } : { wq: p("wq") },
  wkvA: p("wkvA"),
  kvANorm: p("kvANorm"),
  wkvB: p("wkvB"),
  wo: p("wo"),
  eps,
})

/**
 * `half(x)`, recomputed in the backward under full recompute (Recompute.recomputeEffect).
 */
const recomputedIfFull = <E, R>(c: ModelContext.ModelContext, name: string, x: Tensor.Tensor, half: (x: Tensor.Tensor) => Effect.Effect<Tensor.Tensor, E, R>) =>
  c.recompute === "full" ? Recompute.recomputeEffect(name, [x], (inputs) => half(inputs[0] as Tensor.Tensor)) : half(x)

/**
 * The FFN half of layer `layer` (MoE or dense by the layer frequency).
 * @category constructors
 */
export const ffn = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout): FfnOperator =>
  ModelContext.isMoe(c.sizes, layer) ? moe(c, layer, hidden) : mlp(c, layer, hidden)

/** The feed-forward body of a layer: the MoE layer or the dense MLP (internal; FfnOperator is its public form). */
type Ffn = ReturnType<typeof moe> | ReturnType<typeof mlp>
/**
 * The feed-forward operator of a layer (MoE or dense), on the model's activations.
 * @category models
 */
export type FfnOperator = Operator.Operator<ModelContext.Activations, ModelContext.Activations, Operator.ErrorOf<Ffn>, Operator.ServicesOf<Ffn>>

const moe = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout) =>
  Operator.laid(`moe (layer ${layer})`, { input: hidden, output: hidden }, (h: ModelContext.Activations) => Effect.gen(() => moeSteps(c, layer, h)))

/** The MoE half's body, defined once (see attentionSteps). */
function* moeSteps(c: ModelContext.ModelContext, layer: number, h: ModelContext.Activations) {
  const p = weightsOf(c, layer)
  const norm = p("ffnNorm")
  const rows = h.tensor.shape[0] as number
  // Routing replay or recording: the experts of these rows by their places in the data stream;
  // a hash-routed layer's by their token ids (a replay replays them too).
  const places = c.routing === undefined ? undefined : yield* rowPlacesOf(c, rows, "routing replay and recording")
  const hashed = ModelContext.isHashed(c.sizes, layer)
  const replayed =
    (places === undefined ? undefined : c.routing?.replayed?.(layer, places)) ?? (hashed ? HashRouting.experts(yield* rowIdsOf(c, rows), c.sizes.experts, c.sizes.topk) : undefined)
  const routed = yield* moeConfig(c, layer, rows, hashed)
  const config: MoeLayer.MoeConfig = replayed === undefined ? routed : { replayed, ...routed }
  const biased = c.sizes.moe?.expertBias === true
  const hasShared = c.sizes.sharedExpertFfn !== undefined
  const weights: MoeLayer.MoeWeights = {
    router: p("router"),
    ...(c.sizes.routerBias === true ? { routerBias: p("routerBias") } : {}),
    experts: yield* expertWeightsOf(p, c),
    ...(hasShared ? { shared: mlpWeightsOf(p, "shared.", c.sizes) } : {}),
    ...(hasShared && c.sizes.sharedExpertGate === true ? { sharedGate: p("shared.gate") } : {}),
    ...(c.sizes.moeLatentSize === undefined ? {} : { latent: latentWeightsOf(p, c.sizes) }),
  }
  const glu = c.sizes.glu
  const shared = hasShared ? { shared: { tp: c.groups.tp, sequenceParallel: c.sequenceParallel, glu, recompute: RecomputeModules.recomputes(c, "shared_experts") } } : {}
  // Neither the sizes' settings nor `shared` name the recompute fields; spreads last (ModelContext.withRows).
  const recomputeExperts = RecomputeModules.recomputes(c, "experts")
  const recomputeActivation = RecomputeModules.recomputes(c, "moe_act")
  const settings: MoeLayer.MoeConfig = { recomputeExperts, recomputeActivation, glu, ...shared, ...config }
  // global_aux adds this forward's counts to the running ones: a full-recompute replay starts
  // from the counts the first run saw, so it computes the same loss and adds nothing.
  const countsBefore = settings.global?.state.counts
  const layerOn = (input: Tensor.Tensor, replay: boolean) => {
    const g = settings.global
    const run =
      replay && g !== undefined && countsBefore !== undefined
        ? { recomputeExperts, recomputeActivation, glu, ...shared, ...config, global: { tpDpCp: g.tpDpCp, state: { counts: countsBefore } } }
        : settings
    return MoeLayer.forwardLaid(TensorLayout.attach(rmsNorm(input, norm, ModelContext.normEpsOf(c.sizes)), h.layout), weights, run, c.groups.expert)
  }
  let first: MoeResult | undefined
  let tensor: Tensor.Tensor
  let loss: Tensor.Tensor
  // Full recompute, or selective's moe module: the whole half (norm, router, dispatch, experts,
  // combine) runs again in the backward.
  if (c.recompute === "full" || RecomputeModules.recomputes(c, "moe")) {
    const both = yield* Recompute.recomputeEffect(`moe (layer ${layer})`, [h.tensor], (inputs, replay) => {
      const input = inputs[0] as Tensor.Tensor
      return Effect.map(layerOn(input, replay), (r) => {
        if (!replay) first = r
        return packed(add(input, r.output.tensor), r.loss)
      })
    })
    ;[tensor, loss] = unpacked(both, h.tensor.shape)
  } else {
    first = yield* layerOn(h.tensor, false)
    tensor = add(h.tensor, first.output.tensor)
    loss = first.loss
  }
  const r = first as MoeResult
  // The first forward's choice (a recompute's is the same).
  if (places !== undefined) c.routing?.record?.(layer, places, r.routing.indices)
  if (biased && !hashed && c.moeState !== undefined) MoeRunState.countTokens(c.moeState, layer, RoutingMap.tokensPerExpert(r.routing.map))
  // The first forward's beta_local only: a full-recompute replay adds nothing.
  if (r.quantileLocal !== undefined && c.moeState !== undefined) MoeRunState.addQuantileLocal(c.moeState, layer, r.quantileLocal)
  // The layout the dispatcher's combine returned the tokens in (sequence order, checked).
  return {
    tensor,
    layout: r.output.layout,
    aux: add(h.aux, loss),
    expertRows: [...h.expertRows, r.report.rowsPerLocalExpert],
    moeStats: [...(h.moeStats ?? []), { terms: r.terms, dropped: r.dropped }],
  } satisfies ModelContext.Activations
}

type MoeResult = Effect.Success<ReturnType<typeof MoeLayer.forwardLaid>>

/** The layer's output rows and its loss as one flat tensor (one output for a recompute). */
const packed = (rows: Tensor.Tensor, loss: Tensor.Tensor): Tensor.Tensor => concat([reshape(rows, [rows.size]), reshape(loss, [1])], 0)

/** `packed`'s rows (in `shape`) and loss. */
const unpacked = (both: Tensor.Tensor, shape: ReadonlyArray<number>): readonly [Tensor.Tensor, Tensor.Tensor] => {
  const [rows, loss] = split(both, [both.size - 1, 1], 0) as [Tensor.Tensor, Tensor.Tensor]
  return [reshape(rows, shape), reshape(loss, [])]
}

/**
 * The MoE layer's configuration: today's router when the sizes give no MoE settings, else the
 * settings with what their losses need: for seq_aux the sequence of each local row (rows are
 * the cp rank's positions, batch-major, then this member's tp block under sequence
 * parallelism), for global_aux the layer's running counts in the rank's state.
 */
function* moeConfig(c: ModelContext.ModelContext, layer: number, rows: number, hashed: boolean) {
  const s = c.sizes
  if (s.moe === undefined) return { numExperts: s.experts, router: { topk: s.topk, scoreFunction: "softmax" }, auxLossCoeff: c.auxLossCoeff, tpCp: c.groups.tpCp } as const
  const types = s.moe.auxLosses.filter((t) => t.coeff !== 0).map((t) => t.type)
  let sequences: MoeLayer.MoeConfig["sequences"]
  if (types.includes("seq_aux")) {
    const me = (yield* Comm.Communicator).rank
    const perSequence = s.seq / c.groups.cp.ranks.length
    const first = c.sequenceParallel ? Group.localRank(c.groups.tp, me) * rows : 0
    sequences = { count: c.microBatch, length: s.seq, ofRow: Int32Array.from({ length: rows }, (_, r) => Math.floor((first + r) / perSequence)) }
  }
  const needsState = types.includes("global_aux") || s.moe.expertBias || s.moe.quantileBalancing === true
  if (needsState && (c.moeState === undefined || c.groups.tpDpCp === undefined))
    return yield* Effect.die(new Error("global_aux, the expert bias and quantile balancing need the rank's MoE state and its tp-dp-cp group"))
  const state = c.moeState as MoeRunState.MoeRunState
  const global = types.includes("global_aux") && c.groups.tpDpCp !== undefined ? { tpDpCp: c.groups.tpDpCp, state: MoeRunState.globalCounts(state, layer, s.experts) } : undefined
  const expertBias = s.moe.expertBias ? MoeRunState.expertBias(state, layer, s.experts) : undefined
  const quantileBeta = s.moe.quantileBalancing === true ? MoeRunState.quantileBeta(state, layer, s.experts) : undefined
  const jitterRows = s.moe.inputJitterEps === undefined ? undefined : { layer, places: yield* rowPlacesOf(c, rows, "the router's input jitter") }
  const std = s.moe.forceBiased
  if (std !== undefined && std > 0 && c.firstSequence === undefined)
    return yield* Effect.die(new Error("a forced bias drawn per micro-batch needs the micro-batch's identity (ModelContext.firstSequence)"))
  const forcedBias = std === undefined ? undefined : ForcedBalance.biasOf(std, layer, s.experts, c.firstSequence)
  return MoeSettings.layerConfig(s.moe, {
    numExperts: s.experts,
    topk: s.topk,
    tpCp: c.groups.tpCp,
    sequences,
    global,
    expertBias,
    evaluating: c.evaluating,
    quantileBeta,
    jitterRows,
    forcedBias,
    hashed,
  })
}

/** This layer's rows of a per-row array of the cp rows (this member's tp block under sequence parallelism), for `what`. */
function* localRowsOf<A extends Float64Array | Int32Array>(c: ModelContext.ModelContext, rows: number, all: A | undefined, what: string) {
  if (all === undefined) return yield* Effect.die(new Error(`${what} needs each row's place in the data stream and token id (ModelContext.tokenPlaces, tokenIds)`))
  const first = c.sequenceParallel ? Group.localRank(c.groups.tp, (yield* Comm.Communicator).rank) * rows : 0
  return all.subarray(first, first + rows) as A
}

/** The rows' places in the data stream, for `what`. */
const rowPlacesOf = (c: ModelContext.ModelContext, rows: number, what: string) => localRowsOf(c, rows, c.tokenPlaces, what)

/** The rows' token ids, for hash routing. */
const rowIdsOf = (c: ModelContext.ModelContext, rows: number) => localRowsOf(c, rows, c.tokenIds, "hash routing")

/** The gated MLP weights under `prefix` (dense: none, "shared.", "experts."), with their biases under --add-bias-linear. */
const mlpWeightsOf = (p: (name: string) => Tensor.Tensor, prefix: string, sizes: ModelContext.Sizes) => {
  const w = (name: string) => p(`${prefix}${name}`)
  const weights = { wGate: w("wGate"), wUp: w("wUp"), wDown: w("wDown") }
  return sizes.linearBias === true ? { bias: { gate: w("bGate"), up: w("bUp"), down: w("bDown") }, ...weights } : weights
}

/** A LatentMoE layer's projections (Params' latentIn, latentOut and their biases under --add-bias-linear). */
const latentWeightsOf = (p: (name: string) => Tensor.Tensor, sizes: ModelContext.Sizes): LatentProjection.LatentWeights => ({
  into: p("latentIn"),
  out: p("latentOut"),
  ...(sizes.linearBias === true ? { bias: { into: p("latentInBias"), out: p("latentOutBias") } } : {}),
})

/** The routed experts' shards, their biases' with this rank's block of fc2's columns (its place in the ETP group). */
function* expertWeightsOf(p: (name: string) => Tensor.Tensor, c: ModelContext.ModelContext) {
  const { bias, ...weights } = mlpWeightsOf(p, "experts.", c.sizes) as DenseMlp.MlpWeights
  if (bias === undefined) return weights
  const block = Group.localRank(c.groups.expert.etp, (yield* Comm.Communicator).rank)
  return { bias: { block, ...bias }, ...weights }
}

const mlp = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout) =>
  Operator.laid(`mlp (layer ${layer})`, { input: hidden, output: hidden }, (h: ModelContext.Activations) => Effect.gen(() => mlpSteps(c, layer, h)))

/** The dense MLP half's body, defined once (see attentionSteps). */
function* mlpSteps(c: ModelContext.ModelContext, layer: number, h: ModelContext.Activations) {
  const p = weightsOf(c, layer)
  const mlpWeights = mlpWeightsOf(p, "", c.sizes)
  const norm = p("ffnNorm")
  // Through the typed collectives: the output layout is what they made of the input's.
  let layout = h.layout
  const half = (input: Tensor.Tensor) =>
    Effect.map(
      DenseMlp.forwardLaid(TensorLayout.attach(rmsNorm(input, norm, ModelContext.normEpsOf(c.sizes)), h.layout), mlpWeights, {
        tp: c.groups.tp,
        sequenceParallel: c.sequenceParallel,
        glu: c.sizes.glu,
        recompute: RecomputeModules.recomputes(c, "mlp"),
      }),
      (out) => {
        layout = out.layout
        return add(input, out.tensor)
      },
    )
  const tensor = yield* recomputedIfFull(c, `mlp (layer ${layer})`, h.tensor, half)
  return ModelContext.withRows(h, tensor, layout)
}
