/**
 * Sinkhorn: the selection of Sinkhorn routing (Megatron-Core's
 * `moe_router_load_balancing_type = "sinkhorn"`, semantics.md 2.1.8), on one rank's tokens.
 *
 * In training the experts of a token are the top-k of `balance(logits)`: exp(logits) [T, E]
 * scaled by a factor per token and a factor per expert until every expert's column holds about
 * the same mass, so a router that prefers a few experts still spreads its tokens over all of them.
 * The iteration is the reference's: C = exp(logits), d1 = 1[E], then repeatedly
 *
 *   d0_t = 1 / (T * (sum_e d1_e C_te + eps)),   d1_e = 1 / (E * (sum_t d0_t C_te + eps)),
 *
 * eps = 1e-8, until mean_e |d1_e - d1_e(previous)| <= 1e-4; the result is d0_t C_te d1_e. In
 * evaluation the experts are the top-k of the router's activation (no balancing). The probs are
 * the activation of the logits at the selected experts, not renormalized: sigmoid when top-k is
 * 1, the softmax over all experts otherwise (Router's probs for those modes).
 *
 * Decisions (deterministic where the reference is not):
 *   - computed in float64 (the reference in float32), sums by increasing index; ties in the
 *     top-k go to the lower expert, as everywhere in the router;
 *   - the iteration stops after `maxIterations` even when not converged (the reference loops
 *     until it converges: a router whose logits differ by hundreds could keep a job in this loop
 *     for minutes); the result is then the last iterate's;
 *   - a logit whose exp overflows float64 (above ~709.78) makes the balancing meaningless (the
 *     reference's float32 overflows above ~88.7 and gives NaN scores): such logits (and NaN ones)
 *     end the step with a NonFiniteError at the entry, not routed by NaN.
 */
import * as TensorError from "../tensor/TensorError.js"

/** The reference's tolerance on the mean change of the expert factors. */
const tolerance = 1e-4

/** The reference's epsilon in both updates. */
const eps = 1e-8

/** The most updates one balancing runs (each O(T * E)). */
export const maxIterations = 10_000

/**
 * The balanced matrix d0_t C_te d1_e of `logits` [rows * cols] (row-major) and the updates it
 * took; throws a NonFiniteError when a logit's exp is not finite in float64.
 * @category combinators
 */
export const balance = (logits: ArrayLike<number>, rows: number, cols: number): { readonly balanced: Float64Array; readonly iterations: number } => {
  const c = new Float64Array(rows * cols)
  for (let i = 0; i < rows * cols; i++) {
    const v = Math.exp(logits[i] as number)
    if (!Number.isFinite(v)) throw new TensorError.NonFiniteError({ op: "sinkhorn (exp of the router's logits)", index: i, value: v, shape: [rows, cols] })
    c[i] = v
  }
  const d0 = new Float64Array(rows)
  let d1 = new Float64Array(cols).fill(1)
  let next = new Float64Array(cols)
  let iterations = 0
  let error = Number.POSITIVE_INFINITY
  while (error > tolerance && iterations < maxIterations) {
    for (let t = 0; t < rows; t++) {
      let s = 0
      for (let e = 0; e < cols; e++) s += (d1[e] as number) * (c[t * cols + e] as number)
      d0[t] = 1 / rows / (s + eps)
    }
    next.fill(0)
    for (let t = 0; t < rows; t++) {
      const w = d0[t] as number
      for (let e = 0; e < cols; e++) next[e] = (next[e] as number) + w * (c[t * cols + e] as number)
    }
    error = 0
    for (let e = 0; e < cols; e++) {
      next[e] = 1 / cols / ((next[e] as number) + eps)
      error += Math.abs((d1[e] as number) - (next[e] as number))
    }
    error /= cols
    ;[d1, next] = [next, d1]
    iterations++
  }
  for (let t = 0; t < rows; t++) for (let e = 0; e < cols; e++) c[t * cols + e] = (d1[e] as number) * (c[t * cols + e] as number) * (d0[t] as number)
  return { balanced: c, iterations }
}
