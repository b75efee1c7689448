/**
 * RouterSettings: the settings of a run that configure the MoE layers' router, dispatcher and
 * dropping (Megatron's --moe-router-* and --moe-token-* flags), a part of RunConfig's one table
 * of settings.
 */
import * as Dropping from "../moe/Dropping.js"
import * as AuxLossSpec from "../moe/AuxLossSpec.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as Router from "../moe/Router.js"
import { choice, flag, optionalCount, optionalReal, real, text } from "./SettingKinds.js"

const moe = MoeSettings.defaults

/**
 * The router's settings, as RunConfig's settings.
 * @category configuration
 */
export const routerSettings = {
  "score-function": choice(
    Router.scoreFunctions as ["softmax", "sigmoid", "sqrtsoftplus"],
    moe.scoreFunction,
    "router score function (sqrtsoftplus: sqrt(log(1 + e^x)), DeepSeek-V4's; it routes as sigmoid does)",
    "NAME",
  ),
  "pre-softmax": flag("softmax over all experts before the top-k (softmax scores; probs are not renormalized)"),
  "num-groups": optionalCount("group-limited routing: expert groups (divides --experts; with --group-topk)"),
  "group-topk": optionalCount("group-limited routing: groups kept per token (divides --num-groups)", "K"),
  "scaling-factor": optionalReal("multiplies the routing probs (after their normalization)"),
  "aux-loss": text("load-balancing losses TYPE:COEFF[,TYPE:COEFF], TYPE aux | seq_aux | global_aux, or none", AuxLossSpec.formatAuxLoss(moe.auxLosses), "SPEC"),
  "z-loss-coeff": real("router z-loss coefficient (0: off)", moe.zLossCoeff),
  dispatcher: choice(MoeSettings.dispatchers, moe.dispatcher, "token dispatcher", "NAME"),
  "probs-at": choice(
    MoeSettings.probsPlacements,
    moe.probsAt,
    "apply the routing probs in the experts (before fc2) or the combine (fused with its sum), the same model; or, with --topk 1, to each token's input to its expert (Megatron's --moe-apply-probs-on-input, Llama 4's MoE)",
    "WHERE",
  ),
  "capacity-factor": optionalReal("drop tokens over capacity ceil(tokens*topk/experts*F) per expert, decided on each rank from its tokens (dropless when not given)"),
  "drop-policy": choice(
    Dropping.dropPolicies as ["probs", "position"],
    moe.dropPolicy,
    "which tokens an expert over capacity keeps (largest probs, ties to the earlier token; or the first routed)",
    "POLICY",
  ),
  "pad-to-capacity": flag("pad every expert's input to its capacity (needs --capacity-factor)"),
  "expert-bias": flag("aux-loss-free balancing: a per-expert bias on the sigmoid (or sqrtsoftplus) scores for selection, updated once per global batch"),
  "bias-update-rate": real("how far --expert-bias moves each expert's bias per global batch", moe.biasUpdateRate),
  sinkhorn: flag(
    "Sinkhorn routing (Megatron's --moe-router-load-balancing-type sinkhorn): in training each token's experts are the top-k of its logits balanced over the rank's tokens, so every expert gets about the same load; probs sigmoid for top-1, else the softmax over all experts, not renormalized; no aux loss with it",
  ),
  "quantile-balancing": flag(
    "quantile balancing (Megatron's --moe-router-load-balancing-type quantile_balancing): each token's experts are the top-k of its logits minus a per-expert beta, which moves once per global batch toward micro-batch tokens x top-k / experts tokens an expert (saved in checkpoints); probs from the score function; no aux loss with it",
  ),
  "quantile-balancing-ema": optionalReal("how much of the old beta each --quantile-balancing update keeps, in [0, 1) (Megatron's --moe-router-quantile-balancing-ema; default 0)"),
  "force-biased": optionalReal(
    "benchmark only (Megatron's --moe-router-force-biased): the router's logits replaced by noise plus a per-expert bias of N(0, |F|), drawn once per layer (F < 0) or per micro-batch (F > 0): skewed expert loads; gradients pass straight through",
  ),
  "input-jitter-eps": optionalReal(
    "in training, multiply the router's input by noise uniform in [1 - eps, 1 + eps] (Megatron's --moe-input-jitter-eps; each token's noise a function of its place in the data, the same under every mapping)",
  ),
  "hash-layers": optionalCount(
    "DeepSeek-V4's hash routing (Megatron's --moe-n-hash-layers): the MoE layers among the first N route each token to experts its id picks, (id + k) mod experts for k < topk, not to the router's top-k; the probs are the router's scores there (softmax over every expert, or the elementwise score normalized), so it still learns; no expert bias or quantile balancing in those layers, multi-token prediction layers route as usual",
  ),
  "force-load-balancing": flag(
    "benchmark only (Megatron's --moe-router-force-load-balancing): the router's logits replaced by noise, so every expert gets about the same load from the first step; gradients pass straight through",
  ),
} as const
