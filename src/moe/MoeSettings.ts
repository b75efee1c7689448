/**
 * MoeSettings: the router and MoE-layer options a training run chooses (what Megatron-Core's
 * `moe_router_*`, `moe_aux_loss_coeff`, `moe_z_loss_coeff`, `moe_expert_capacity_factor`,
 * `moe_token_drop_policy`, `moe_pad_expert_input_to_capacity` and `moe_token_dispatcher_type`
 * set), their checks, and the MoeLayer configuration they make.
 *
 * The checks refuse what cannot train, each naming the field as a flag would (`preSoftmax` is
 * `--pre-softmax`): softmax after a top-1 selection gives every token the prob 1, a constant,
 * so the router gets no gradient (Megatron refuses it too); group-limited routing needs groups
 * that divide the experts and keep at least top-k of them; padding needs a capacity.
 *
 * Dropping (a capacity factor) is decided on each rank from its own tokens (semantics.md 2.2.6,
 * 6.7): capacity C = ceil(T * K / E * factor) for the rank's T tokens of the micro-batch; an
 * expert over capacity keeps its C tokens of largest prob ("probs"; ties to the earlier token)
 * or its first C routed tokens in token order ("position"). Deterministic, so a run repeats.
 */
import * as ConfigError from "../errors/ConfigError.js"
import type { Group } from "../comm/Group.js"
import type * as Dispatcher from "./Dispatcher.js"
import { type AuxLossTerm, formatAuxLoss } from "./AuxLossSpec.js"
import * as Dropping from "./Dropping.js"
import type * as MoeLayer from "./MoeLayer.js"
import * as Router from "./Router.js"
import * as SelfBalancing from "./SelfBalancing.js"

/**
 * The token dispatchers.
 * @category configuration
 */
export const dispatchers = ["alltoall", "allgather"] as const

/**
 * Where the probs may weight a token's routed computation: its experts' outputs (in the expert,
 * or as the combine sums them: the same model) or, with top-1, its input to the expert
 * (Megatron-Core's moe_apply_probs_on_input, Llama 4's MoE: expert(p x), another model).
 * @category configuration
 */
export const probsPlacements = ["experts", "combine", "input"] as const

/**
 * One of `probsPlacements`.
 * @category models
 */
export type ProbsPlacement = Dispatcher.ProbsAt | "input"

/**
 * The router and MoE-layer options of a run.
 * @category models
 */
export interface MoeSettings {
  readonly scoreFunction: Router.ScoreFunction
  /** softmax over all experts before the top-k (softmax only). */
  readonly preSoftmax: boolean
  /** Group-limited routing: expert groups, and the groups kept per token (both or neither). */
  readonly numGroups?: number | undefined
  readonly groupTopk?: number | undefined
  /** Multiplies the probs after their normalization. */
  readonly scalingFactor?: number | undefined
  /** In the order of `auxLossTypes`, each type at most once. */
  readonly auxLosses: ReadonlyArray<AuxLossTerm>
  /** 0: off. */
  readonly zLossCoeff: number
  readonly dispatcher: (typeof dispatchers)[number]
  /** Where the probs weight a token's routed computation (`probsPlacements`). */
  readonly probsAt: ProbsPlacement
  /** Undefined: dropless. */
  readonly capacityFactor?: number | undefined
  readonly dropPolicy: Dropping.DropPolicy
  readonly padToCapacity: boolean
  /**
   * Aux-loss-free balancing (semantics.md 2.1.5, sigmoid only): a per-expert bias added to the
   * scores for selection, moved by `biasUpdateRate` toward balance once per global batch.
   */
  readonly expertBias: boolean
  readonly biasUpdateRate: number
  /**
   * Benchmark only (Megatron-Core's moe_router_force_load_balancing): the router's logits replaced
   * by noise, so the experts get balanced loads from the first step (ForcedBalance).
   */
  readonly forceLoadBalancing?: boolean | undefined
  /**
   * Sinkhorn routing (Megatron-Core's load-balancing type "sinkhorn", Sinkhorn.ts): in training
   * each token's experts are the top-k of the logits balanced over the rank's tokens, in
   * evaluation the top-k of the activation; probs sigmoid (top-1) or the full softmax's, not
   * renormalized. Dropless; no aux loss, score function, groups, scaling or expert bias with it.
   */
  readonly sinkhorn?: boolean | undefined
  /**
   * Quantile balancing (Megatron-Core's load-balancing type "quantile_balancing",
   * QuantileBalancing.ts): experts picked by the top-k of the logits minus a per-expert beta that
   * moves once per global batch toward m * k / E tokens an expert. No aux loss, groups, expert
   * bias or capacity with it; the probs are the score function's.
   */
  readonly quantileBalancing?: boolean | undefined
  /** How much of the old beta each update keeps (Megatron's moe_router_quantile_balancing_ema; default 0). */
  readonly quantileBalancingEma?: number | undefined
  /** The router's input times noise uniform in [1 - eps, 1 + eps] in training (InputJitter; none when absent). */
  readonly inputJitterEps?: number | undefined
  /**
   * Benchmark only (Megatron-Core's moe_router_force_biased = std): forced balance's noise plus a
   * per-expert bias of N(0, |std|), drawn once per layer (std < 0) or per micro-batch (std > 0):
   * skewed loads (ForcedBalance.biasOf).
   */
  readonly forceBiased?: number | undefined
  /**
   * DeepSeek-V4's hash routing (Megatron-Core's moe_n_hash_layers, HashRouting): the MoE layers
   * among the first N route each token by its id, not by the router's top-k (no expert bias or
   * quantile balancing there).
   */
  readonly hashLayers?: number | undefined
}

/**
 * Today's router: softmax after the top-k, dropless, aux loss 0.01, all-to-all.
 * @category constructors
 */
export const defaults: MoeSettings = {
  scoreFunction: "softmax",
  preSoftmax: false,
  auxLosses: [{ type: "aux", coeff: 0.01 }],
  zLossCoeff: 0,
  dispatcher: "alltoall",
  probsAt: "experts",
  dropPolicy: "probs",
  padToCapacity: false,
  expertBias: false,
  biasUpdateRate: 1e-3,
}

/**
 * Whether the settings drop tokens.
 * @category guards
 */
export const drops = (s: MoeSettings): boolean => s.capacityFactor !== undefined

/**
 * Why a one-rank run cannot reproduce these settings on a mapping, else undefined (for
 * `pleat verify`): capacity is decided on each rank's tokens, which are the whole micro-batch
 * only when tp * cp = 1; global_aux averages counts summed over dp ranks' micro-batches, which
 * one rank sees one at a time, so only dp = 1 matches; forced load balancing draws each token's
 * noise from the bits of its float32 logits (ForcedBalance.ts), which tp, cp and etp move in their
 * last bits (another summation order), as do a GPU's kernels against the host's one-rank run, so a
 * token whose bits moved goes to other experts.
 * @category guards
 */
export const oneRankProblem = (
  s: MoeSettings,
  sizes: { readonly tp: number; readonly cp: number; readonly dp: number; readonly etp: number },
  numerics: { readonly dtype: "float32" | "float64"; readonly onGpu: boolean },
): ConfigError.ConfigError | undefined => {
  if (drops(s) && sizes.tp * sizes.cp > 1)
    return ConfigError.make(
      "--capacity-factor",
      s.capacityFactor,
      `drops tokens by each rank's capacity, and with tp*cp = ${sizes.tp * sizes.cp} a rank holds 1/${sizes.tp * sizes.cp} of a micro-batch's tokens, so one rank (all of them) drops others`,
      "verify dropping with --tp 1 --cp 1 (one rank then drops the same tokens), or verify without --capacity-factor",
    )
  if (s.sinkhorn === true && sizes.tp * sizes.cp > 1)
    return ConfigError.make(
      "--sinkhorn",
      true,
      `balances the routing over each rank's tokens, and with tp*cp = ${sizes.tp * sizes.cp} a rank holds 1/${sizes.tp * sizes.cp} of a micro-batch's tokens, so one rank (all of them) balances another set`,
      "verify Sinkhorn routing with --tp 1 --cp 1 (one rank then balances the same tokens), or verify without --sinkhorn",
    )
  if (s.auxLosses.some((t) => t.type === "global_aux" && t.coeff !== 0) && sizes.dp > 1)
    return ConfigError.make(
      "--aux-loss",
      formatAuxLoss(s.auxLosses),
      `has global_aux, whose counts sum the micro-batches of the ${sizes.dp} dp ranks, which one rank sees one at a time`,
      "verify global_aux on a mapping with dp 1, or verify another aux loss",
    )
  const reordering = sizes.tp * sizes.cp * sizes.etp
  const forced =
    s.forceBiased !== undefined ? (["--force-biased", s.forceBiased] as const) : s.forceLoadBalancing === true ? (["--force-load-balancing", true] as const) : undefined
  if (forced !== undefined && numerics.dtype === "float32" && (reordering > 1 || numerics.onGpu)) {
    const why =
      reordering > 1 ? `with tp*cp*etp = ${reordering} those sum in another order than on one rank` : "the GPU's kernels round them otherwise than the host's one-rank run"
    return ConfigError.make(
      forced[0],
      forced[1],
      `draws each token's routing noise from the bits of its float32 router logits, and ${why}, so tokens whose last bits moved go to other experts`,
      `verify it with --dtype float64 (its noise reads the logits rounded to float32, far coarser than the last bits float64 moves)${reordering > 1 ? ", or on a mapping with tp, cp and etp 1" : ""}, or verify without ${forced[0]}`,
    )
  }
  return undefined
}

/**
 * Checks the settings against the experts and top-k; throws a ConfigError naming the field
 * (camelCase of its flag) and the fix.
 * @category guards
 */
export const check = (s: MoeSettings, experts: number, topk: number): void => {
  if (s.probsAt === "input" && topk !== 1)
    throw ConfigError.make(
      "probsAt",
      "input",
      `scales each token by its prob before its one expert, and with top-k ${topk} a token has ${topk} (Megatron-LM's moe_apply_probs_on_input needs top-k 1 too)`,
      "use --topk 1, or --probs-at experts",
    )
  if (s.hashLayers !== undefined && !(Number.isSafeInteger(s.hashLayers) && s.hashLayers >= 1))
    throw ConfigError.make("hashLayers", s.hashLayers, "is not a whole number of layers >= 1", "pass how many leading layers route by token id, e.g. 3, or drop it")
  const eps = s.inputJitterEps
  if (eps !== undefined && !(Number.isFinite(eps) && eps > 0 && eps < 1))
    throw ConfigError.make("inputJitterEps", eps, "is not a number in (0, 1) (the router's input is scaled by 1 - eps to 1 + eps)", "pass a small eps such as 0.01, or drop it")
  if (s.forceBiased !== undefined && !(Number.isFinite(s.forceBiased) && s.forceBiased !== 0))
    throw ConfigError.make("forceBiased", s.forceBiased, "is not a finite non-zero std", "pass the bias's std: negative draws it once per layer, positive per micro-batch")
  if (s.sinkhorn === true) SelfBalancing.sinkhornCheck(s)
  if (s.quantileBalancing === true) SelfBalancing.quantileCheck(s, experts, topk)
  else if (s.quantileBalancingEma !== undefined)
    throw ConfigError.make("quantileBalancingEma", s.quantileBalancingEma, "has no quantile balancing to smooth", "add --quantile-balancing, or drop --quantile-balancing-ema")
  if (s.scoreFunction === "softmax" && !s.preSoftmax && topk === 1 && s.sinkhorn !== true)
    throw ConfigError.make(
      "topk",
      topk,
      "with softmax after the top-k gives every token the prob 1 (the softmax of one logit), so the router gets no gradient and never learns",
      "add --pre-softmax, or use --score-function sigmoid, or --topk 2 or more",
    )
  if (s.preSoftmax && s.scoreFunction !== "softmax")
    throw ConfigError.make("preSoftmax", true, `has no effect with --score-function ${s.scoreFunction}`, "drop --pre-softmax, or use --score-function softmax")
  const g = s.numGroups
  const gk = s.groupTopk
  if ((g === undefined) !== (gk === undefined))
    throw ConfigError.make(
      g === undefined ? "numGroups" : "groupTopk",
      undefined,
      `is needed with --${g === undefined ? "group-topk" : "num-groups"}`,
      "give both --num-groups and --group-topk, or neither",
    )
  if (g !== undefined && gk !== undefined) {
    if (experts % g !== 0) throw ConfigError.make("numGroups", g, `does not divide experts = ${experts}`, `use a number of groups that divides ${experts}, or change --experts`)
    if (g % gk !== 0) throw ConfigError.make("groupTopk", gk, `does not divide num-groups = ${g}`, `use a --group-topk that divides ${g}`)
    if (gk * (experts / g) < topk)
      throw ConfigError.make(
        "groupTopk",
        gk,
        `keeps ${gk} groups of ${experts / g} experts, fewer than topk = ${topk}`,
        `raise --group-topk to ${Math.ceil(topk / (experts / g))} or more, or lower --topk`,
      )
  }
  if (s.scalingFactor !== undefined && (!Number.isFinite(s.scalingFactor) || s.scalingFactor === 0))
    throw ConfigError.make("scalingFactor", s.scalingFactor, "is not a finite non-zero number", "pass a finite non-zero factor, or drop --scaling-factor")
  if (!Number.isFinite(s.zLossCoeff) || s.zLossCoeff < 0)
    throw ConfigError.make("zLossCoeff", s.zLossCoeff, "is not a number >= 0", "pass 0 (off) or a small positive coefficient, e.g. 0.001")
  if (s.capacityFactor !== undefined && (!Number.isFinite(s.capacityFactor) || s.capacityFactor <= 0))
    throw ConfigError.make("capacityFactor", s.capacityFactor, "is not a number > 0", "pass a capacity factor such as 1.25, or drop --capacity-factor (dropless)")
  if (s.capacityFactor !== undefined && s.dropPolicy === "probs" && s.scalingFactor !== undefined && s.scalingFactor < 0)
    throw ConfigError.make(
      "scalingFactor",
      s.scalingFactor,
      "is negative, so dropping by probs ranks every routed token below the unrouted ones (prob 0) and keeps none",
      "use a positive --scaling-factor, or --drop-policy position",
    )
  if (s.padToCapacity && s.capacityFactor === undefined)
    throw ConfigError.make("padToCapacity", true, "has no capacity to pad to", "add --capacity-factor F, or drop --pad-to-capacity")
  if (s.expertBias && s.scoreFunction === "softmax")
    throw ConfigError.make(
      "expertBias",
      true,
      `only moves sigmoid (or sqrtsoftplus) scores (softmax ignores the bias, so it would never balance anything)`,
      "add --score-function sigmoid, or drop --expert-bias",
    )
  if (!Number.isFinite(s.biasUpdateRate) || s.biasUpdateRate <= 0)
    throw ConfigError.make("biasUpdateRate", s.biasUpdateRate, "is not a number > 0", "pass a small rate such as 0.001")
  if (!Dropping.dropPolicies.includes(s.dropPolicy)) throw ConfigError.make("dropPolicy", s.dropPolicy, "is not a drop policy", `use one of ${Dropping.dropPolicies.join(", ")}`)
  Router.check(experts, routerOptions(s, topk))
}

/** The router's options (`evaluating`: Sinkhorn routing's selection without the balancing). */
const routerOptions = (s: MoeSettings, topk: number, expertBias?: ReadonlyArray<number>, evaluating = false, hashed = false): Router.RouterOptions => ({
  topk,
  scoreFunction: s.scoreFunction,
  preSoftmax: s.preSoftmax,
  numGroups: s.numGroups,
  groupTopk: s.groupTopk,
  scalingFactor: s.scalingFactor,
  ...(expertBias === undefined ? {} : { expertBias }),
  ...(s.sinkhorn === true ? { sinkhorn: evaluating ? "evaluation" : "training" } : {}),
  ...(hashed ? { hashed: true } : {}),
})

const layerAuxType = { aux: "aux_loss", seq_aux: "seq_aux_loss", global_aux: "global_aux_loss" } as const

/**
 * What the layer needs beyond the settings: its groups and, per loss type, its inputs.
 * @category models
 */
export interface LayerContext {
  readonly numExperts: number
  readonly topk: number
  readonly tpCp: Group
  /** For seq_aux. */
  readonly sequences?: MoeLayer.MoeConfig["sequences"]
  /** For global_aux. */
  readonly global?: MoeLayer.MoeConfig["global"]
  /** The layer's expert bias now (with `expertBias`). */
  readonly expertBias?: ReadonlyArray<number> | undefined
  /** A forward of an evaluation (Sinkhorn routing selects without balancing there). */
  readonly evaluating?: boolean | undefined
  /** The layer's quantile-balancing beta now (with `quantileBalancing`). */
  readonly quantileBeta?: ReadonlyArray<number> | undefined
  /** The layer and its rows' places in the data stream (with `inputJitterEps`, in training). */
  readonly jitterRows?: { readonly layer: number; readonly places: ArrayLike<number> } | undefined
  /** The layer's forced bias for this micro-batch (with `forceBiased`). */
  readonly forcedBias?: ArrayLike<number> | undefined
  /** A hash-routed layer (with `hashLayers`): the selection comes from the token ids, no quantile balancing. */
  readonly hashed?: boolean | undefined
}

/**
 * The MoeLayer configuration of the settings.
 * @category mapping
 */
export const layerConfig = (s: MoeSettings, c: LayerContext): MoeLayer.MoeConfig => ({
  numExperts: c.numExperts,
  router: routerOptions(s, c.topk, c.expertBias, c.evaluating === true, c.hashed === true),
  ...(s.capacityFactor === undefined ? {} : { capacityFactor: s.capacityFactor, dropPolicy: s.dropPolicy, padToCapacity: s.padToCapacity }),
  dispatcher: s.dispatcher,
  probsAt: s.probsAt,
  ...(s.forceLoadBalancing === true ? { forceLoadBalancing: true } : {}),
  ...(c.forcedBias === undefined ? {} : { forcedBias: c.forcedBias }),
  auxLosses: s.auxLosses.map((t) => ({ type: layerAuxType[t.type], coeff: t.coeff })),
  zLossCoeff: s.zLossCoeff,
  tpCp: c.tpCp,
  ...(c.sequences === undefined ? {} : { sequences: c.sequences }),
  ...(c.global === undefined ? {} : { global: c.global }),
  ...(s.quantileBalancing === true && c.hashed !== true ? { quantile: { beta: c.quantileBeta ?? new Array<number>(c.numExperts).fill(0), update: c.evaluating !== true } } : {}),
  ...(s.inputJitterEps !== undefined && c.evaluating !== true && c.jitterRows !== undefined ? { jitter: { eps: s.inputJitterEps, ...c.jitterRows } } : {}),
})
