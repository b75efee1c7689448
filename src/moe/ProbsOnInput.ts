/**
 * ProbsOnInput: the probs applied to the tokens before their experts (Megatron-Core's
 * moe_apply_probs_on_input, Llama 4's MoE; top-1 only): each token's rows scaled by its one prob,
 * and the experts' outputs then weighted by 1, so a token's output is expert(p x).
 *
 * The token's prob is its row sum of the dense probs [T, E] (one non-zero), computed where the
 * router computes (on the host, their values at hand); its gradient goes back to every expert of
 * the row (the zeros' gradients are dropped by the router's backward, which reads the selected
 * ones only). Both are host ops whose backward reads its gradient on the host without blocking
 * (Autograd.hostResult): on a device the step waits for no copy.
 */
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import { mul } from "../tensor/ops/Elementwise.js"
import { to } from "../tensor/ops/Transfer.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as RoutingMap from "./RoutingMap.js"

/** Each token's prob, [T, 1]: the row sums of `probs` [T, E], on the host. */
const tokenProbs = (probs: Tensor.Tensor): Tensor.Tensor => {
  const [t, e] = probs.shape as [number, number]
  const p = probs.readHost()
  const out = DType.allocate(probs.dtype, t)
  for (let r = 0; r < t; r++) {
    let s = 0
    for (let j = 0; j < e; j++) s += p[r * e + j] as number
    out[r] = s
  }
  return Autograd.hostResult("tokenProbs", [probs], out, [t, 1], (g) => {
    const gy = g.readHost()
    const dx = DType.allocate(g.dtype, t * e)
    for (let r = 0; r < t; r++) dx.fill(gy[r] as number, r * e, (r + 1) * e)
    return [Tensor.fromStorage(dx, probs.shape, { device: g.device })]
  })
}

/**
 * The dispatch's tokens and probs with the probs on the input: `tokens` [T, H] times each token's
 * prob, and weights of 1 where `map` routes (on the probs' device, as the router's probs are).
 * @category combinators
 */
export const applied = (tokens: Tensor.Tensor, probs: Tensor.Tensor, map: RoutingMap.RoutingMap): { readonly tokens: Tensor.Tensor; readonly probs: Tensor.Tensor } => ({
  tokens: mul(tokens, to(tokenProbs(probs), tokens.device)),
  probs: Tensor.fromArray(map.mask, probs.shape, { dtype: probs.dtype, device: probs.device }),
})
