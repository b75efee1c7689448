/**
 * SelfBalancing: the checks of the routers that balance by themselves, Sinkhorn routing
 * (Sinkhorn.ts) and quantile balancing (QuantileBalancing.ts): what each refuses beside it, as
 * Megatron-Core does, each naming the field as a flag would and the fix.
 */
import * as ConfigError from "../errors/ConfigError.js"
import { formatAuxLoss } from "./AuxLossSpec.js"
import type { MoeSettings } from "./MoeSettings.js"

/**
 * What both routers refuse, as Megatron-Core does: aux losses (it asserts none is enabled),
 * group-limited routing, a capacity factor (a ValueError there: capacity only with the aux losses
 * or none); and what would pick the experts another way (expert bias, forced balance).
 */
const refusedBeside = (s: MoeSettings, name: string, flag: string): void => {
  const losses = s.auxLosses.filter((t) => t.coeff !== 0)
  if (losses.length > 0)
    throw ConfigError.make(
      "auxLoss",
      formatAuxLoss(losses),
      `is a load-balancing loss, which ${name} does not take (it balances by itself)`,
      `add --aux-loss none, or drop ${flag}`,
    )
  if (s.numGroups !== undefined) throw ConfigError.make("numGroups", s.numGroups, `is group-limited routing, which ${name} has not`, `drop it, or drop ${flag}`)
  if (s.capacityFactor !== undefined)
    throw ConfigError.make(
      "capacityFactor",
      s.capacityFactor,
      "drops tokens, which Megatron-LM allows only with the aux losses or none",
      `drop --capacity-factor (${name} is dropless), or drop ${flag}`,
    )
  if (s.expertBias) throw ConfigError.make("expertBias", true, `balances the selection another way than ${name} does`, "use one of them")
  if (s.forceLoadBalancing === true) throw ConfigError.make("forceLoadBalancing", true, `replaces with noise the logits ${name} selects from`, "use one of them")
  if (s.forceBiased !== undefined) throw ConfigError.make("forceBiased", s.forceBiased, `replaces with noise the logits ${name} selects from`, "use one of them")
}

/**
 * What Sinkhorn routing refuses: `refusedBeside`'s, and the score function's options it leaves
 * unused (its probs are sigmoid for top-1, else the softmax over all experts: refused rather than
 * ignored).
 */
export const sinkhornCheck = (s: MoeSettings): void => {
  refusedBeside(s, "Sinkhorn routing", "--sinkhorn")
  const fix = "drop it, or drop --sinkhorn"
  if (s.scoreFunction !== "softmax") throw ConfigError.make("scoreFunction", s.scoreFunction, "is not used by Sinkhorn routing (sigmoid probs for top-1, else softmax)", fix)
  if (s.preSoftmax) throw ConfigError.make("preSoftmax", true, "is not used by Sinkhorn routing (its probs for top-k > 1 are already the softmax over all experts)", fix)
  if (s.scalingFactor !== undefined) throw ConfigError.make("scalingFactor", s.scalingFactor, "is not applied by Sinkhorn routing", fix)
}

/**
 * What quantile balancing refuses: `refusedBeside`'s, Sinkhorn routing, top-k of every expert
 * (the cutoff is the (k+1)-th), an ema outside [0, 1). The micro-batch's tokens times top-k must
 * be a multiple of the experts (`tokensProblem`, where the batch is known).
 */
export const quantileCheck = (s: MoeSettings, experts: number, topk: number): void => {
  refusedBeside(s, "quantile balancing", "--quantile-balancing")
  if (s.sinkhorn === true) throw ConfigError.make("sinkhorn", true, "selects the experts another way than quantile balancing does", "use one of them")
  if (topk >= experts)
    throw ConfigError.make(
      "topk",
      topk,
      `routes to all ${experts} experts, where quantile balancing needs a (k+1)-th expert for each token's cutoff`,
      "lower --topk, or drop --quantile-balancing",
    )
  const ema = s.quantileBalancingEma ?? 0
  if (!Number.isFinite(ema) || ema < 0 || ema >= 1)
    throw ConfigError.make("quantileBalancingEma", ema, "is not in [0, 1)", "pass 0 (the default: beta is each global batch's estimate) or a decay such as 0.9")
}

/**
 * Quantile balancing's need of the batch: a micro-batch's tokens (micro-batch x seq) times top-k
 * a multiple of the experts (its target load m * k / E a whole number of tokens, as the reference
 * asks), else undefined.
 * @category guards
 */
export const tokensProblem = (s: MoeSettings, experts: number, topk: number, tokens: number): ConfigError.ConfigError | undefined =>
  s.quantileBalancing === true && (tokens * topk) % experts !== 0
    ? ConfigError.make(
        "quantileBalancing",
        true,
        `aims every expert at m * k / E tokens of a micro-batch, and its ${tokens} tokens (--micro-batch x --seq) times top-k ${topk} are not a multiple of the ${experts} experts`,
        `use a micro-batch and sequence length whose tokens times top-k divide by ${experts}, or drop --quantile-balancing`,
      )
    : undefined
