/**
 * Router: top-k routing with a score function, `topk_routing_with_score_function` of the
 * reference (semantics.md 2.1.2 step 3 and 2.2.4), on one rank's tokens.
 *
 * Shape legend: T tokens, E experts, K topk, G expert groups.
 *
 *   logits_TE -> probs_TE (dense, exactly 0 off the map), routingMap [T, E], indices_TK,
 *                scores_TE and auxRoutingMap [T, E] for the aux losses (AuxLoss, 2.2.5)
 *
 * Selection (`select`) runs top-k on a per-mode score, then the probs are computed from the
 * logits at the selected experts:
 *   - softmax, preSoftmax = true:  s = softmax(logits) over all E; select on s;
 *                                  p = s at the selected experts (NOT renormalized, 6.8);
 *   - softmax, preSoftmax = false: select on the logits; p = softmax over the K selected
 *                                  logits (they sum to 1);
 *   - sigmoid, sqrtsoftplus (ScoreFunctions): s = f(logits); select on s + expertBias (bias only
 *              picks, 2.1.5 / 6.9);
 *              p = s_sel / (sum(s_sel) + 1e-20) when K > 1, p = s_sel when K = 1;
 *              preSoftmax has no effect.
 *   - then, when scalingFactor is truthy (given and not 0, as the reference's `if scaling`),
 *     p *= scalingFactor (after the normalization, 6.8).
 * Group-limited selection (numGroups G and groupTopk both given): view the selection scores
 * as [T, G, E/G]; a group's score is the sum of its top floor(K / groupTopk) scores (0 when
 * that is 0 experts); keep the top groupTopk groups; take the top K of the scores of the kept
 * groups.
 *
 * Decisions (deterministic where the reference is not):
 *   - ties in every top-k (experts and groups) go to the LOWER index (the TopK op's rule);
 *   - expertBias is ignored for softmax, as in the unfused reference (6.9);
 *   - every score is computed in float64 whatever the logits dtype; probs are stored in the
 *     logits dtype (the reference computes in fp32 and casts back, 2.0);
 *   - K <= groupTopk * E / G is required (`check`): otherwise the reference's masked top-k
 *     picks -inf entries of the dropped groups (NaN or -inf probs), which has no meaning;
 *   - groupTopk must divide numGroups (the replay case contract; the reference only asks
 *     groupTopk <= numGroups), and both group fields are given or neither (2.8).
 *
 * Gradients: `probsFor` is one op whose backward is written out per mode (selection is
 * piecewise constant, so the gradient flows through the selected entries only, 2.2.4):
 *   pre:     dx_i = [i in S] G_i s_i - s_i * sum_{j in S} G_j s_j
 *   post:    dx_i = [i in S] q_i (G_i - sum_{j in S} G_j q_j)        (q = softmax over S)
 *   sigmoid, sqrtsoftplus: dL/ds_i = G_i / D - sum_j G_j s_j / D^2 (K > 1, D = sum s_S + 1e-20),
 *            G_i (K = 1); dx_i = dL/ds_i * f'(x_i) (s_i (1 - s_i) for sigmoid)
 * with G = dL/dp * scale on the selected entries.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import { topk } from "../tensor/ops/TopK.js"
import * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import * as AuxLoss from "./AuxLoss.js"
import * as RoutingMap from "./RoutingMap.js"
import * as ScoreFunctions from "./ScoreFunctions.js"
import * as Sinkhorn from "./Sinkhorn.js"

/**
 * The score functions of the router (ScoreFunctions).
 * @category models
 */
export type ScoreFunction = ScoreFunctions.ScoreFunction

/**
 * The score functions, for validation and messages.
 * @category configuration
 */
export const scoreFunctions: ReadonlyArray<ScoreFunction> = ScoreFunctions.all

/**
 * Options of the router (null and undefined both mean "not set").
 * @category models
 */
export interface RouterOptions {
  readonly topk: number
  readonly scoreFunction: ScoreFunction
  /** softmax only: softmax over all E before the top-k (default false). */
  readonly preSoftmax?: boolean | undefined
  /** Group-limited routing: the number of expert groups G (divides E). */
  readonly numGroups?: number | null | undefined
  /** Group-limited routing: the groups kept per token. */
  readonly groupTopk?: number | null | undefined
  /** Multiplies the probs when truthy (given and not 0). */
  readonly scalingFactor?: number | null | undefined
  /** [E], added to the sigmoid scores for selection only; ignored for softmax. */
  readonly expertBias?: ArrayLike<number> | null | undefined
  /** Sinkhorn routing (Sinkhorn.ts) in place of the other selection options, in training or evaluation. */
  readonly sinkhorn?: "training" | "evaluation" | undefined
  /**
   * Hash routing (HashRouting: DeepSeek-V4's hash layers): the experts come from the tokens'
   * ids (the precomputed selection); the probs are the score function's over every expert at
   * them: softmax's full softmax, an elementwise score normalized over the K (also for K = 1),
   * both times the scaling factor. Selection options (bias, groups, Sinkhorn) then do nothing.
   */
  readonly hashed?: boolean | undefined
}

/**
 * The result of routing one rank's tokens.
 * @category models
 */
export interface Routing {
  /** [T, E] dense probs, exactly 0 where the map is false; differentiable w.r.t. the logits. */
  readonly probs: Tensor.Tensor
  readonly routingMap: RoutingMap.RoutingMap
  /** [T * K], the selected experts of each token, in selection order (best first). */
  readonly indices: Int32Array
  /** [T, E] aux-loss scores over all experts (2.2.5); differentiable w.r.t. the logits. */
  readonly scores: Tensor.Tensor
  /** Top-k of `scores` (no bias, no groups): the map the aux losses count. */
  readonly auxRoutingMap: RoutingMap.RoutingMap
}

const given = <A>(v: A | null | undefined): v is A => v !== null && v !== undefined

const isPositiveInt = (v: number): boolean => Number.isSafeInteger(v) && v >= 1

/**
 * Checks the options against E; throws a ConfigError naming the field (the case-file name).
 * @category guards
 */
export const check = (numExperts: number, options: RouterOptions): void => {
  if (!isPositiveInt(numExperts)) {
    throw ConfigError.make("numExperts", numExperts, "is not a positive integer", "give at least 1 expert")
  }
  const k = options.topk
  if (!isPositiveInt(k)) throw ConfigError.make("topk", k, "is not a positive integer", "route each token to 1..numExperts experts")
  if (k > numExperts) {
    throw ConfigError.make("topk", k, `is larger than numExperts ${numExperts}`, `use topk between 1 and ${numExperts}`)
  }
  if (!scoreFunctions.includes(options.scoreFunction)) {
    throw ConfigError.make("scoreFunction", options.scoreFunction, "is not a score function", `use one of ${scoreFunctions.join(", ")}`)
  }
  const g = options.numGroups
  const gk = options.groupTopk
  if (given(g) !== given(gk)) {
    const missing = given(g) ? "groupTopk" : "numGroups"
    throw ConfigError.make(missing, undefined, `is needed with ${given(g) ? "numGroups" : "groupTopk"}`, "give both numGroups and groupTopk, or neither")
  }
  if (given(g) && given(gk)) {
    if (!isPositiveInt(g)) throw ConfigError.make("numGroups", g, "is not a positive integer", "use a divisor of numExperts")
    if (numExperts % g !== 0) {
      throw ConfigError.make("numGroups", g, `does not divide numExperts ${numExperts}`, "use a divisor of numExperts")
    }
    if (!isPositiveInt(gk)) throw ConfigError.make("groupTopk", gk, "is not a positive integer", `use a divisor of numGroups ${g}`)
    if (gk > g) throw ConfigError.make("groupTopk", gk, `is larger than numGroups ${g}`, `use a divisor of numGroups ${g}`)
    if (g % gk !== 0) throw ConfigError.make("groupTopk", gk, `does not divide numGroups ${g}`, `use a divisor of numGroups ${g}`)
    const reachable = gk * (numExperts / g)
    if (k > reachable) {
      throw ConfigError.make(
        "groupTopk",
        gk,
        `keeps ${gk} groups of ${numExperts / g} experts, fewer than topk ${k}`,
        `raise groupTopk to at least ${Math.ceil(k / (numExperts / g))} or lower topk`,
      )
    }
  }
  if (given(options.sinkhorn) && options.sinkhorn !== "training" && options.sinkhorn !== "evaluation")
    throw ConfigError.make("sinkhorn", options.sinkhorn, "is not a Sinkhorn phase", "give training or evaluation, or leave it unset")
  const sf = options.scalingFactor
  if (given(sf) && !Number.isFinite(sf)) throw ConfigError.make("scalingFactor", sf, "is not a finite number", "give a finite number or null")
  const bias = options.expertBias
  if (given(bias)) {
    if (bias.length !== numExperts) {
      throw ConfigError.make("expertBias", bias.length, `entries, but numExperts is ${numExperts}`, "give one bias per expert, or null")
    }
    for (let e = 0; e < bias.length; e++) {
      if (!Number.isFinite(bias[e] as number)) {
        throw ConfigError.make(`expertBias[${e}]`, bias[e], "is not a finite number", "give finite numbers")
      }
    }
  }
}

/** T and E of logits [T, E], else a ShapeError. */
const dims = (op: string, logits: Tensor.Tensor): readonly [number, number] => {
  if (logits.rank !== 2) throw TensorError.shape(op, `logits must be [T, E], got ${TensorError.formatShape(logits.shape)}`)
  return logits.shape as readonly [number, number]
}

/** The multiplier of the probs: the scaling factor when truthy, else 1. */
const scaleOf = (options: RouterOptions): number => {
  if (given(options.sinkhorn)) return 1
  const sf = options.scalingFactor
  return given(sf) && sf !== 0 ? sf : 1
}

/**
 * The values the top-k selection runs on, [T * E] in float64: softmax(logits) (pre-softmax),
 * the logits (softmax without pre-softmax), or f(logits) + expertBias (sigmoid, sqrtsoftplus).
 * @category mapping
 */
const selectionScores = (logits: Tensor.Tensor, options: RouterOptions): Float64Array => {
  const [t, e] = dims("selectionScores", logits)
  const x = logits.readHost()
  const out = new Float64Array(t * e)
  if (options.scoreFunction === "softmax") {
    if (options.preSoftmax === true) {
      const row = new Float64Array(e)
      for (let r = 0; r < t; r++) {
        ScoreFunctions.softmaxRow(x, r * e, e, row)
        out.set(row, r * e)
      }
    } else {
      out.set(x)
    }
    return out
  }
  const bias = options.expertBias
  const f = ScoreFunctions.elementwise[options.scoreFunction].value
  for (let r = 0; r < t; r++) {
    for (let j = 0; j < e; j++) out[r * e + j] = f(x[r * e + j] as number) + (given(bias) ? (bias[j] as number) : 0)
  }
  return out
}

/**
 * Plain top-k of every row of `scores` [rows, cols]: [rows * k] indices, best first, ties to
 * the lower index.
 * @category mapping
 */
const topkIndices = (scores: Float64Array, rows: number, cols: number, k: number): Int32Array => topk(Tensor.fromStorage(scores, [rows, cols]), k).indices

/**
 * Group-limited top-k (2.2.4): keep the top `groupTopk` of `numGroups` groups per row (group
 * score = sum of the group's top floor(k / groupTopk) values), then the top k experts of the
 * kept groups. Needs k <= groupTopk * cols / numGroups (see `check`).
 * @category mapping
 */
const groupLimitedTopk = (scores: Float64Array, rows: number, cols: number, k: number, numGroups: number, groupTopk: number): Int32Array => {
  const per = cols / numGroups
  const best = Math.floor(k / groupTopk)
  // [rows * G, per] view: the top `best` of each group, summed best first.
  const top = topk(Tensor.fromStorage(scores, [rows * numGroups, per]), best).values.data
  const groupScores = new Float64Array(rows * numGroups)
  for (let i = 0; i < rows * numGroups; i++) {
    let s = 0
    for (let j = 0; j < best; j++) s += top[i * best + j] as number
    groupScores[i] = s
  }
  const kept = topkIndices(groupScores, rows, numGroups, groupTopk)
  const masked = new Float64Array(rows * cols).fill(Number.NEGATIVE_INFINITY)
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < groupTopk; j++) {
      const from = r * cols + (kept[r * groupTopk + j] as number) * per
      masked.set(scores.subarray(from, from + per), from)
    }
  }
  return topkIndices(masked, rows, cols, k)
}

/**
 * The selected experts of every token, [T * K] best first (plain or group-limited top-k on
 * `selectionScores`).
 * @category mapping
 */
export const select = (logits: Tensor.Tensor, options: RouterOptions): Int32Array => {
  const [t, e] = dims("select", logits)
  if (given(options.sinkhorn)) return topkIndices(sinkhornScores(logits, options.topk, options.sinkhorn), t, e, options.topk)
  const scores = selectionScores(logits, options)
  const g = options.numGroups
  const gk = options.groupTopk
  return given(g) && given(gk) ? groupLimitedTopk(scores, t, e, options.topk, g, gk) : topkIndices(scores, t, e, options.topk)
}

/**
 * What Sinkhorn routing selects on, [T * E]: the balanced logits in training, the activation
 * (sigmoid for top-1, else the softmax over all experts) in evaluation.
 */
const sinkhornScores = (logits: Tensor.Tensor, k: number, phase: "training" | "evaluation"): Float64Array => {
  const [t, e] = dims("sinkhorn", logits)
  const x = logits.readHost()
  if (phase === "training") return Sinkhorn.balance(x, t, e).balanced
  const out = new Float64Array(t * e)
  if (k === 1) for (let i = 0; i < t * e; i++) out[i] = ScoreFunctions.sigmoid(x[i] as number)
  else for (let r = 0; r < t; r++) ScoreFunctions.softmaxRow(x, r * e, e, out.subarray(r * e, (r + 1) * e))
  return out
}

/** Softmax over all experts ("pre") or the selected ("post"), or an elementwise function. */
type Mode = "pre" | "post" | ScoreFunctions.Elementwise

/** Sinkhorn routing's probs are the sigmoid (top-1: one prob, so no normalization) or the full softmax's; hash routing's the full softmax's or the elementwise score's. */
const modeOf = (options: RouterOptions): Mode => {
  if (options.hashed === true) return options.scoreFunction === "softmax" ? "pre" : ScoreFunctions.elementwise[options.scoreFunction]
  if (given(options.sinkhorn)) return options.topk === 1 ? ScoreFunctions.elementwise.sigmoid : "pre"
  if (options.scoreFunction !== "softmax") return ScoreFunctions.elementwise[options.scoreFunction]
  return options.preSoftmax === true ? "pre" : "post"
}

/**
 * The dense probs [T, E] of the given selection (the reference's precomputed-indices path,
 * 2.2.4): differentiable w.r.t. the logits, with the selection held fixed.
 * @category combinators
 */
export const probsFor = (logits: Tensor.Tensor, indices: Int32Array, options: RouterOptions): Tensor.Tensor => {
  const [t, e] = dims("probsFor", logits)
  const k = options.topk
  if (indices.length !== t * k) throw TensorError.shape("probsFor", `${indices.length} indices for T=${t} tokens of K=${k}`)
  const seen = new Uint8Array(e)
  for (let r = 0; r < t; r++) {
    seen.fill(0)
    for (let j = 0; j < k; j++) {
      const i = indices[r * k + j] as number
      if (i < 0 || i >= e || seen[i] === 1) throw TensorError.shape("probsFor", `token ${r}: expert ${i} is outside [0, ${e}) or repeated`)
      seen[i] = 1
    }
  }
  const mode = modeOf(options)
  // Elementwise scores are normalized over a token's K (Megatron's top-k: for K > 1; hash routing: always).
  const normalized = k > 1 || options.hashed === true
  const scale = scaleOf(options)
  const x = logits.readHost()
  const out = DType.allocate(logits.dtype, t * e)
  const q = new Float64Array(k)
  const full = new Float64Array(e)
  /** q[j] = the unscaled prob of the j-th selected expert of token r. */
  const probsOfRow = (r: number): void => {
    const base = r * e
    const at = (j: number) => base + (indices[r * k + j] as number)
    if (mode === "pre") {
      ScoreFunctions.softmaxRow(x, base, e, full)
      for (let j = 0; j < k; j++) q[j] = full[indices[r * k + j] as number] as number
    } else if (mode === "post") {
      let max = Number.NEGATIVE_INFINITY
      for (let j = 0; j < k; j++) max = Math.max(max, x[at(j)] as number)
      let sum = 0
      for (let j = 0; j < k; j++) {
        q[j] = Math.exp((x[at(j)] as number) - max)
        sum += q[j] as number
      }
      for (let j = 0; j < k; j++) q[j] = (q[j] as number) / sum
    } else {
      let sum = 0
      for (let j = 0; j < k; j++) {
        q[j] = mode.value(x[at(j)] as number)
        sum += q[j] as number
      }
      if (normalized) for (let j = 0; j < k; j++) q[j] = (q[j] as number) / (sum + 1e-20)
    }
  }
  for (let r = 0; r < t; r++) {
    probsOfRow(r)
    for (let j = 0; j < k; j++) out[r * e + (indices[r * k + j] as number)] = (q[j] as number) * scale
  }
  return Autograd.hostResult("routerProbs", [logits], out, [t, e], (g) => {
    const dx = DType.allocate(g.dtype, t * e)
    const gy = g.readHost()
    const s = new Float64Array(k)
    for (let r = 0; r < t; r++) {
      const base = r * e
      const grad = (j: number) => (gy[base + (indices[r * k + j] as number)] as number) * scale
      if (mode === "pre") {
        ScoreFunctions.softmaxRow(x, base, e, full)
        let dot = 0
        for (let j = 0; j < k; j++) dot += grad(j) * (full[indices[r * k + j] as number] as number)
        for (let i = 0; i < e; i++) dx[base + i] = -(full[i] as number) * dot
        for (let j = 0; j < k; j++) {
          const i = indices[r * k + j] as number
          dx[base + i] = (dx[base + i] as number) + grad(j) * (full[i] as number)
        }
      } else if (mode === "post") {
        probsOfRow(r)
        let dot = 0
        for (let j = 0; j < k; j++) dot += grad(j) * (q[j] as number)
        for (let j = 0; j < k; j++) dx[base + (indices[r * k + j] as number)] = (q[j] as number) * (grad(j) - dot)
      } else {
        let sum = 0
        let dot = 0
        for (let j = 0; j < k; j++) {
          s[j] = mode.value(x[base + (indices[r * k + j] as number)] as number)
          sum += s[j] as number
          dot += grad(j) * (s[j] as number)
        }
        const d = sum + 1e-20
        for (let j = 0; j < k; j++) {
          const at = base + (indices[r * k + j] as number)
          const dLds = normalized ? grad(j) / d - dot / (d * d) : grad(j)
          dx[at] = dLds * mode.derivative(x[at] as number, s[j] as number)
        }
      }
    }
    return [Tensor.fromStorage(dx, logits.shape, { device: g.device })]
  })
}

/**
 * Routes T tokens (2.1.2 step 3 and 2.2.4): checks the options, selects (or takes `precomputed`,
 * [T * K]), computes the probs, and the aux-loss scores and map (2.2.5). No dropping here.
 * @category combinators
 */
export const routing = (logits: Tensor.Tensor, options: RouterOptions, precomputed?: Int32Array): Routing => {
  const [t, e] = dims("routing", logits)
  check(e, options)
  const indices = precomputed ?? select(logits, options)
  const probs = probsFor(logits, indices, options)
  const routingMap = RoutingMap.fromIndices(t, e, indices, options.topk)
  const aux = AuxLoss.routingScoresForAuxLoss(logits, options.topk, options.scoreFunction)
  return { probs, routingMap, indices, scores: aux.scores, auxRoutingMap: aux.routingMap }
}
