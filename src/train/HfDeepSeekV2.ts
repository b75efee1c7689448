/**
 * HfDeepSeekV2: DeepSeek-V2's router (transformers' DeepseekV2Moe, model_type deepseek_v2) as
 * pleat's, both ways: read from config.json by `pleat import` (`routerOf`), checked and written by
 * `pleat export` (`routerProblem`, `configKeys`).
 *
 * DeepSeek-V2 scores every expert with a softmax over all the logits, takes the top-k scores as
 * they are (no renormalization) and multiplies them by routed_scaling_factor: pleat's
 * --score-function softmax --pre-softmax --scaling-factor F (Megatron-Core's router with
 * use_pre_softmax). Its group-limited routing (topk_method group_limited_greedy) keeps the
 * topk_group groups whose best expert scores highest; pleat's (Megatron-Core's) scores a group by
 * the sum of its top floor(topk / group-topk), the same only where that is 1: other group
 * settings are refused. Its balance loss is the sequence-wise one (seq_aux, aux_loss_alpha):
 * pleat's seq_aux term, the mean over sequences as Megatron-Core's. transformers ignores
 * norm_topk_prob (DeepSeek's own code renormalizes with it): a config that sets it with a top-k
 * of more than one is refused rather than read one way or the other.
 */
import type * as ConfigError from "../errors/ConfigError.js"
import type * as MoeSettings from "../moe/MoeSettings.js"
import type * as Checkpoint from "./Checkpoint.js"

type Model = Checkpoint.Manifest["model"]

/** The keys of a DeepSeek-V2 config.json the router reads (transformers' defaults already in). */
export interface RouterKeys {
  readonly model_type: string
  readonly num_experts_per_tok: number
  readonly topk_method?: string | null | undefined
  readonly n_group?: number | null | undefined
  readonly topk_group?: number | null | undefined
  readonly norm_topk_prob?: boolean | undefined
  readonly routed_scaling_factor?: number | undefined
  readonly aux_loss_alpha?: number | undefined
  readonly seq_aux?: boolean | undefined
}

/**
 * pleat's router settings of a DeepSeek-V2 config; a ConfigError (from `refuse`) where pleat's
 * router cannot route as transformers' does.
 * @category constructors
 */
export const routerOf = (c: RouterKeys, refuse: (reason: string, fix: string) => ConfigError.ConfigError): Partial<MoeSettings.MoeSettings> => {
  const k = c.num_experts_per_tok
  const method = c.topk_method ?? "greedy"
  if (method !== "greedy" && method !== "group_limited_greedy")
    throw refuse(
      `has topk_method ${method}`,
      "import a DeepSeek-V2 model whose topk_method is greedy or group_limited_greedy (a noaux_tc router is DeepSeek-V3's: model_type deepseek_v3)",
    )
  if (k > 1 && c.norm_topk_prob === true)
    throw refuse(
      "has norm_topk_prob true, which transformers' DeepSeek-V2 ignores and DeepSeek's own code follows",
      "import a DeepSeek-V2 model with norm_topk_prob false (its top-k scores weighted as they are, as the Hub's are)",
    )
  const groups = method === "group_limited_greedy" ? (c.n_group ?? 1) : 1
  const keep = c.topk_group ?? 1
  if (groups > 1 && Math.floor(k / keep) !== 1)
    throw refuse(
      `has n_group ${groups} and topk_group ${keep} with num_experts_per_tok ${k}: DeepSeek-V2 scores a group by its best expert, pleat by its top floor(${k} / ${keep})`,
      "import a model whose num_experts_per_tok is less than twice topk_group, or with topk_method greedy",
    )
  const scaling = c.routed_scaling_factor ?? 1
  const coeff = c.aux_loss_alpha ?? 0.001
  return {
    scoreFunction: "softmax",
    preSoftmax: true,
    expertBias: false,
    auxLosses: coeff === 0 ? [] : [{ type: c.seq_aux === false ? "aux" : "seq_aux", coeff }],
    ...(groups > 1 ? { numGroups: groups, groupTopk: keep } : {}),
    ...(scaling === 1 ? {} : { scalingFactor: scaling }),
  }
}

/**
 * What keeps `m`'s router from DeepSeek-V2's, as the flag that set it; undefined when nothing
 * does (the options every format refuses are HfExport's).
 * @category guards
 */
export const routerProblem = (m: Model): string | undefined => {
  const r = m.moe
  if (r === undefined) return undefined
  if (r.scoreFunction !== "softmax") return `it routes with --score-function ${r.scoreFunction}, where deepseek-v2 routes with a softmax over every expert`
  if (!r.preSoftmax) return "its probs are renormalized over the top-k, where deepseek-v2 weights the top-k of a softmax over every expert as they are (--pre-softmax)"
  if (r.expertBias) return "it routes with --expert-bias, which deepseek-v2's router has not (deepseek-v3's has)"
  if (r.numGroups !== undefined && Math.floor(m.topk / (r.groupTopk ?? 1)) !== 1)
    return `it scores an expert group by its top ${Math.floor(m.topk / (r.groupTopk ?? 1))} (topk ${m.topk} / --group-topk ${r.groupTopk}), where deepseek-v2 scores by its best expert`
  return undefined
}

/**
 * The router's keys of a DeepSeek-V2 config.json for `m` (transformers' names; scoring_func,
 * aux_loss_alpha and seq_aux for DeepSeek's own code, which reads them).
 * @category constructors
 */
export const configKeys = (m: Model): Record<string, unknown> => {
  const r = m.moe
  const groups = r?.numGroups
  const balance = r?.auxLosses.find((t) => t.type === "seq_aux" || t.type === "aux")
  return {
    topk_method: groups === undefined ? "greedy" : "group_limited_greedy",
    n_group: groups ?? 1,
    topk_group: groups === undefined ? 1 : (r?.groupTopk ?? 1),
    norm_topk_prob: false,
    routed_scaling_factor: r?.scalingFactor === undefined || r.scalingFactor === 0 ? 1 : r.scalingFactor,
    scoring_func: "softmax",
    aux_loss_alpha: balance?.coeff ?? 0,
    seq_aux: balance?.type !== "aux",
  }
}
