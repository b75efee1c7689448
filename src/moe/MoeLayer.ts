/**
 * MoeLayer: router -> (token dropping) -> dispatcher -> experts -> combine, on the expert grid.
 *
 * Shape legend: T tokens of this rank (its attention-layout rows viewed as a batch: no
 * communication to switch layouts), H hidden, E experts.
 *   logits = x Wr [T, E] (+ br, GPT-OSS's router bias; router math in float64 inside the ops, whatever the dtype)
 *   routing -> probs [T, E], map; with a capacity factor, per-rank capacity dropping (and
 *   padding) from this rank's tokens
 *   LatentMoE (optional): the tokens projected H -> L after the router, the combined rows L -> H
 *   (LatentProjection); the dispatch and the experts then work at width L
 *   dispatcher "alltoall" (default) or "allgather" -> [T, H]
 *   shared experts (optional): a dense MLP on the attention tp group, its output optionally
 *   scaled by sigmoid(x gate) per token, added to the routed output
 * Returns the output and the aux-loss and z-loss terms (coefficients applied; any of aux,
 * seq_aux and global_aux at once, in that order) so the caller adds them to the training loss:
 * their gradients then flow into the router like any loss. It also returns each term's value
 * without its coefficient and the routed (token, expert) pairs the capacity dropped, for metrics.
 * `forwardLaid` takes the rows in their layout and gives the output in the layout the
 * dispatcher's combine returned (and the shared experts' typed collectives agreed on).
 * Under bf16 mixed precision the router (logits, routing, dropping) and its aux and z losses
 * run in the tape's fp32 region, as Megatron's moe_router_dtype fp32: the logits of bf16
 * inputs and weights are not rounded, and neither is anything computed from them here.
 */
import * as Effect from "effect/Effect"
import * as DenseMlp from "../dataflow/DenseMlp.js"
import { biased } from "../dataflow/ParallelLinear.js"
import * as Comm from "../comm/Communicator.js"
import { LayoutError } from "../dataflow/Layout.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import type { Group } from "../comm/Group.js"
import * as RoutingMap from "./RoutingMap.js"
import { add, mul, scale, sigmoidOf } from "../tensor/ops/Elementwise.js"
import { matmul } from "../tensor/ops/Matmul.js"
import { hostValues, to } from "../tensor/ops/Transfer.js"
import * as Recompute from "../tensor/Recompute.js"
import * as Tensor from "../tensor/Tensor.js"
import * as AllGatherDispatcher from "./AllGatherDispatcher.js"
import * as AllToAllDispatcher from "./AllToAllDispatcher.js"
import * as AuxLoss from "./AuxLoss.js"
import * as Capacity from "./Capacity.js"
import type * as Dispatcher from "./Dispatcher.js"
import * as Dropping from "./Dropping.js"
import * as ForcedBalance from "./ForcedBalance.js"
import type * as GatedActivation from "../tensor/ops/GatedActivation.js"
import * as Experts from "./Experts.js"
import * as RoutedLayout from "./RoutedLayout.js"
import * as InputJitter from "./InputJitter.js"
import * as LatentProjection from "./LatentProjection.js"
import * as ProbsOnInput from "./ProbsOnInput.js"
import * as QuantileBalancing from "./QuantileBalancing.js"
import * as Router from "./Router.js"

/**
 * The load-balancing losses of semantics.md 2.1.3.
 * @category models
 */
export type AuxLossType = "aux_loss" | "seq_aux_loss" | "global_aux_loss"

/**
 * The layer's settings.
 * @category models
 */
export interface MoeConfig {
  readonly numExperts: number
  readonly router: Router.RouterOptions
  /** Benchmark only: the logits replaced by noise, the gradient straight through (ForcedBalance). */
  readonly forceLoadBalancing?: boolean
  /** Benchmark only: the logits replaced by noise plus this bias [E] (ForcedBalance.forceBiased). */
  readonly forcedBias?: ArrayLike<number> | undefined
  /** null: dropless (default). */
  readonly capacityFactor?: number | null
  readonly dropPolicy?: Dropping.DropPolicy
  readonly padToCapacity?: boolean
  readonly dispatcher?: "alltoall" | "allgather"
  /**
   * Where the probs weight a token's routed computation (Dispatcher.DispatchInput.probsAt; default
   * "experts"), or "input" (top-1: each token scaled by its prob before dispatch, the experts'
   * outputs then weighted by 1; Megatron-Core's moe_apply_probs_on_input).
   */
  readonly probsAt?: Dispatcher.ProbsAt | "input"
  /** aux_loss coefficient (0: off). */
  readonly auxLossCoeff?: number
  /**
   * Which load-balancing loss the coefficient applies to (semantics.md 2.1.3): "aux_loss"
   * (default; counts over the micro-batch) or "seq_aux_loss" (counts per sequence, the mean of
   * the sequences' losses; needs `sequences`). Counts are summed over `tpCp` either way.
   */
  readonly auxLossType?: AuxLossType
  /**
   * Several load-balancing losses at once, each with its coefficient, applied in this order;
   * when given, `auxLossCoeff` and `auxLossType` are not used.
   */
  readonly auxLosses?: ReadonlyArray<{ readonly type: AuxLossType; readonly coeff: number }>
  /**
   * For global_aux_loss: the tp-dp-cp group the counts are summed over, and the running counts
   * of the global batch so far (the caller keeps them and resets them after each global batch;
   * this forward's counts are added to `state.counts`).
   */
  readonly global?: { readonly tpDpCp: Group; readonly state: { counts: AuxLoss.GlobalCounts } }
  /** For seq_aux_loss: B, the sequence of each local row, and S, the full sequence length. */
  readonly sequences?: { readonly count: number; readonly ofRow: Int32Array; readonly length: number }
  /** z-loss coefficient (0: off). */
  readonly zLossCoeff?: number
  /**
   * The attention tp-cp group of this rank: aux-loss counts are summed over it and both losses
   * scale by its size (semantics.md 2.1.3, 2.1.6). Default: this rank alone.
   */
  readonly tpCp?: Group
  /**
   * Shared experts (semantics.md 2.7): a dense SwiGLU MLP every token goes through, on the
   * attention TP group (with the usual SP allgather / reduce-scatter), added to the routed output.
   */
  readonly shared?: DenseMlp.MlpOptions
  /** Recompute the expert MLPs in the backward instead of keeping their activations (Recompute). */
  readonly recomputeExperts?: boolean
  /** Recompute only the experts' activation and fc2 (Experts.forward's recomputeActivation; moe_act). */
  readonly recomputeActivation?: boolean
  /** The routed experts' gated activation (GatedActivation; SwiGLU when absent). */
  readonly glu?: GatedActivation.Glu | undefined
  /**
   * Quantile-balancing selection (QuantileBalancing) over the micro-batch's tokens (gathered over
   * `tpCp`): the layer's beta now, and whether this forward gives its beta_local (training).
   */
  readonly quantile?: { readonly beta: ReadonlyArray<number>; readonly update: boolean } | undefined
  /**
   * Routing replay (semantics.md 2.1.10, REPLAY_FORWARD): each row's experts, [T * K] best first,
   * in place of the router's selection; the probs are then the score function's at them
   * (Router.probsFor), and dropping, the dispatch and the aux losses go on as usual.
   */
  readonly replayed?: Int32Array | undefined
  /** The router's input jitter (InputJitter): eps, the layer, and each row's place in the data stream. */
  readonly jitter?: { readonly eps: number; readonly layer: number; readonly places: ArrayLike<number> } | undefined
}

/**
 * This rank's layer weights: the router (replicated) and its expert shards.
 * @category models
 */
export interface MoeWeights {
  /** [H, E] */
  readonly router: Tensor.Tensor
  /** The router's bias, [E], added to its logits (GPT-OSS's router); none: no bias. */
  readonly routerBias?: Tensor.Tensor | undefined
  readonly experts: Experts.ExpertWeights
  /** This rank's TP shards of the shared experts' MLP (with `MoeConfig.shared`). */
  readonly shared?: DenseMlp.MlpWeights
  /** `[H, 1]`: the shared experts' output is scaled by sigmoid(x gate) per token (semantics.md 2.7). */
  readonly sharedGate?: Tensor.Tensor
  /** A LatentMoE's projections: the experts (their weights [E, L, F], [E, F, L]) take and give L-wide rows. */
  readonly latent?: LatentProjection.LatentWeights | undefined
}

/**
 * The layer's forward on plain rows [T, H] (under shared experts with sequence parallelism,
 * this member's tp block of the rows): output [T, H], the loss terms, what routing did.
 * @category combinators
 */
export const forward = (x: Tensor.Tensor, w: MoeWeights, config: MoeConfig, groups: Dispatcher.ExpertGroups) => {
  const tp = config.shared?.sequenceParallel === true ? config.shared.tp.ranks.length : 1
  const rows = TensorLayout.dim("tokens", (x.shape[0] as number) * tp, [{ axis: "tp", size: tp }])
  const layout = TensorLayout.make([rows, ...RoutedLayout.plain(x).dims.slice(1)])
  return Effect.map(forwardLaid(TensorLayout.attach(x, layout), w, config, groups), (r) => ({
    output: r.output.tensor,
    loss: r.loss,
    terms: r.terms,
    dropped: r.dropped,
    routing: r.routing,
    report: r.report,
  }))
}

/**
 * The layer's forward on laid rows: the output in their layout, the loss terms to add, and
 * what routing did.
 * @category combinators
 */
export const forwardLaid = (laid: TensorLayout.WithLayout, w: MoeWeights, config: MoeConfig, groups: Dispatcher.ExpertGroups) =>
  Effect.gen(() => forwardLaidSteps(laid, w, config, groups))

/** forwardLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* forwardLaidSteps(laid: TensorLayout.WithLayout, w: MoeWeights, config: MoeConfig, groups: Dispatcher.ExpertGroups) {
  const x = laid.tensor
  const fp32 = <A>(f: () => A): A => (x.tape === undefined ? f() : x.tape.fullPrecision(f))
  const j = config.jitter
  const routerIn = j === undefined ? x : mul(x, to(Tensor.fromStorage(InputJitter.factors(j.places, j.layer, x.shape[1] as number, j.eps, x.dtype), x.shape), x.device))
  const gated = fp32(() => biased(matmul(routerIn, w.router), w.routerBias))
  // The router runs on the host: its logits come down without blocking the JS thread.
  yield* hostValues(gated)
  const bias = config.forcedBias
  const logits =
    bias !== undefined ? fp32(() => ForcedBalance.forceBiased(gated, bias)) : config.forceLoadBalancing === true ? fp32(() => ForcedBalance.forceLoadBalancing(gated)) : gated
  const quantile =
    config.quantile === undefined ? undefined : yield* QuantileBalancing.selectGathered(logits, config.tpCp, config.router.topk, config.quantile.beta, config.quantile.update)
  if (quantile !== undefined && config.replayed !== undefined) return yield* Effect.die(new Error("MoeLayer: routing replay and quantile balancing both select the experts"))
  const routed = fp32(() => Router.routing(logits, config.router, quantile?.indices ?? config.replayed))
  let probs = routed.probs
  let map = routed.routingMap
  // Routed (token, expert) pairs the capacity dropped (0 when dropless).
  let dropped = 0
  if (!Capacity.isDropless(config.capacityFactor)) {
    const kept = fp32(() =>
      Dropping.applyTokenDropping(probs, map, {
        topk: config.router.topk,
        capacityFactor: config.capacityFactor as number,
        dropPolicy: config.dropPolicy ?? "probs",
        padToCapacity: config.padToCapacity ?? false,
      }),
    )
    dropped = RoutingMap.count(map) - RoutingMap.count(RoutingMap.and(map, kept.routingMap))
    probs = kept.probs
    map = kept.routingMap
  }
  // A LatentMoE's rows enter the dispatch at the latent width (Megatron: after the router, before dispatch_preprocess).
  const entering = w.latent === undefined ? laid : LatentProjection.into(laid, w.latent)
  // Probs on the input (top-1): each token times its one prob, the experts' outputs times 1.
  const onInput = config.probsAt === "input"
  const routedIn = onInput ? ProbsOnInput.applied(entering.tensor, probs, map) : { tokens: entering.tensor, probs }
  const input = {
    tokens: routedIn.tokens,
    layout: entering.layout,
    probs: routedIn.probs,
    map,
    numExperts: config.numExperts,
    experts: w.experts,
    glu: config.glu,
    groups,
    ...(config.probsAt === undefined || onInput ? {} : { probsAt: config.probsAt }),
    ...(config.recomputeExperts === true
      ? { compute: recomputedExperts(w.experts, config.glu) }
      : config.recomputeActivation === true
        ? { compute: activationRecomputed(w.experts, config.glu) }
        : {}),
  }
  const routedOut = config.dispatcher === "allgather" ? yield* AllGatherDispatcher.run(input) : yield* AllToAllDispatcher.run(input)
  const report = routedOut.report
  const combined = TensorLayout.attach(routedOut.output, routedOut.layout)
  let output = w.latent === undefined ? combined : LatentProjection.out(combined, w.latent, laid.layout.dims[laid.layout.dims.length - 1] as TensorLayout.Dim)
  if (config.shared !== undefined) {
    if (w.shared === undefined) return yield* Effect.die(new Error("MoeLayer: config.shared is set but the weights have no shared-expert shards"))
    const mlp = yield* DenseMlp.forwardLaid(laid, w.shared, config.shared)
    // The gate is per token: this rank's rows, the same rows the shared output holds.
    const shared = w.sharedGate === undefined ? mlp : TensorLayout.attach(mul(mlp.tensor, yield* gateOf(x, w.sharedGate)), mlp.layout)
    if (!TensorLayout.equals(shared.layout, output.layout)) {
      const detail = `the shared experts give ${TensorLayout.format(shared.layout)} where the routed experts give ${TensorLayout.format(output.layout)}`
      return yield* Effect.fail(new LayoutError({ op: "moe", detail }))
    }
    output = TensorLayout.attach(add(output.tensor, shared.tensor), output.layout)
  }
  let loss = Tensor.zeros([], { dtype: x.dtype, device: x.device })
  const groupSize = config.tpCp?.ranks.length ?? 1
  // Each term's value on this rank, without its coefficient (the rank's share: shares add up
  // over tp-cp, over tp-dp-cp for global_aux_loss), for the metrics.
  const terms: Array<LossTerm> = []
  for (const term of auxLossesOf(config)) {
    const term32 = auxLossTerm(term, routed, config, groupSize)
    const value = yield* x.tape === undefined ? term32 : x.tape.fullPrecisionEffect(term32)
    loss = add(loss, value)
    terms.push({ name: term.type, value: Tensor.item(value) / term.coeff })
  }
  if ((config.zLossCoeff ?? 0) !== 0) {
    const z = fp32(() => AuxLoss.zLoss(logits, 1, groupSize))
    loss = add(loss, scale(z, config.zLossCoeff as number))
    terms.push({ name: "z_loss", value: Tensor.item(z) })
  }
  return { output, loss, terms, dropped, routing: { probs, map, indices: routed.indices }, report, quantileLocal: quantile?.local }
}

/** The shared experts' gate per token, sigmoid(x Wg): the sigmoid runs on the host, its input brought down without blocking. */
const gateOf = (x: Tensor.Tensor, gate: Tensor.Tensor) => Effect.gen(() => gateOfSteps(x, gate))

/** gateOf's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* gateOfSteps(x: Tensor.Tensor, gate: Tensor.Tensor) {
  const logits = matmul(x, gate)
  yield* hostValues(logits)
  return sigmoidOf(logits)
}

/** The experts' forward, recomputed in the backward (selective recompute). */
const recomputedExperts =
  (w: Experts.ExpertWeights, glu: GatedActivation.Glu | undefined) => (rows: Tensor.Tensor, probs: Tensor.Tensor | undefined, rowsPerExpert: ReadonlyArray<number>) =>
    Recompute.recompute("experts", probs === undefined ? [rows] : [rows, probs], ([r, p]) => Experts.forward(r as Tensor.Tensor, p, rowsPerExpert, w, glu))

/** The experts' forward with their activation and fc2 recomputed in the backward (moe_act). */
const activationRecomputed =
  (w: Experts.ExpertWeights, glu: GatedActivation.Glu | undefined) => (rows: Tensor.Tensor, probs: Tensor.Tensor | undefined, rowsPerExpert: ReadonlyArray<number>) =>
    Experts.forward(rows, probs, rowsPerExpert, w, glu, true)

/**
 * A loss term of the layer: its name and this rank's value without the coefficient.
 * @category models
 */
export interface LossTerm {
  readonly name: AuxLossType | "z_loss"
  readonly value: number
}

/** The load-balancing losses of a config: `auxLosses`, else the one of auxLossCoeff/Type. */
const auxLossesOf = (config: MoeConfig): ReadonlyArray<{ readonly type: AuxLossType; readonly coeff: number }> =>
  (config.auxLosses ?? [{ type: config.auxLossType ?? "aux_loss", coeff: config.auxLossCoeff ?? 0 }]).filter((t) => t.coeff !== 0)

/** One load-balancing loss with its coefficient applied, this rank's share. */
const auxLossTerm = (term: { readonly type: AuxLossType; readonly coeff: number }, routed: Router.Routing, config: MoeConfig, groupSize: number) =>
  Effect.gen(() => auxLossTermSteps(term, routed, config, groupSize))

/** auxLossTerm's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* auxLossTermSteps(term: { readonly type: AuxLossType; readonly coeff: number }, routed: Router.Routing, config: MoeConfig, groupSize: number) {
  switch (term.type) {
    case "global_aux_loss": {
      const g = config.global
      if (g === undefined) return yield* Effect.die(new Error("MoeLayer: global_aux_loss needs config.global"))
      const local = RoutingMap.tokensPerExpert(routed.auxRoutingMap)
      const summed = yield* Comm.allReduce(g.tpDpCp, Tensor.fromArray(local, [1, local.length], { dtype: "float64" }))
      g.state.counts = AuxLoss.addGlobalCounts(g.state.counts, summed.data)
      return AuxLoss.globalAuxLoss(routed.scores, routed.auxRoutingMap, {
        topk: config.router.topk,
        coeff: term.coeff,
        counts: g.state.counts,
        groupSize: g.tpDpCp.ranks.length,
      })
    }
    case "seq_aux_loss":
      return yield* seqAuxLoss(routed.scores, routed.auxRoutingMap, config, term.coeff)
    case "aux_loss": {
      const local = RoutingMap.tokensPerExpert(routed.auxRoutingMap)
      const tokensPerExpert =
        config.tpCp === undefined ? local : Array.from((yield* Comm.allReduce(config.tpCp, Tensor.fromArray(local, [1, local.length], { dtype: "float64" }))).data)
      return AuxLoss.auxLoss(routed.scores, routed.auxRoutingMap, { topk: config.router.topk, coeff: term.coeff, tokensPerExpert, groupSize })
    }
  }
}

/**
 * seq_aux_loss across ranks: per sequence b, counts c_b[e] summed over tp-cp; this rank's share
 * is sum over its rows t and experts e of scores[t, e] * w[t, e], with
 * w[t, e] = coeff * E / (K * S^2 * B) * c_{b(t)}[e], so the shares of the tp-cp group add up to
 * the mean over the B sequences of each sequence's switch loss (semantics.md 2.1.3).
 */
const seqAuxLoss = (scores: Tensor.Tensor, map: RoutingMap.RoutingMap, config: MoeConfig, coeff: number) => Effect.gen(() => seqAuxLossSteps(scores, map, config, coeff))

/** seqAuxLoss's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* seqAuxLossSteps(scores: Tensor.Tensor, map: RoutingMap.RoutingMap, config: MoeConfig, coeff: number) {
  const seq = config.sequences
  if (seq === undefined) return yield* Effect.die(new Error("MoeLayer: seq_aux_loss needs config.sequences"))
  const e = config.numExperts
  const t = map.numTokens
  const local = new Float64Array(seq.count * e)
  for (let r = 0; r < t; r++)
    for (let x = 0; x < e; x++) if (map.mask[r * e + x] === 1) local[(seq.ofRow[r] as number) * e + x] = (local[(seq.ofRow[r] as number) * e + x] as number) + 1
  const counts = config.tpCp === undefined ? local : (yield* Comm.allReduce(config.tpCp, Tensor.fromStorage(local, [1, local.length]))).data
  const scale = (coeff * e) / (config.router.topk * seq.length * seq.length * seq.count)
  const w = new Float64Array(t * e)
  for (let r = 0; r < t; r++) for (let x = 0; x < e; x++) w[r * e + x] = scale * (counts[(seq.ofRow[r] as number) * e + x] as number)
  // On the host, where the scores are (a device product would bring its sum back down).
  return AuxLoss.weightedSum(scores, w)
}
