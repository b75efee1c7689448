/**
 * Cross-entropy of logits against integer targets, the LM loss.
 *
 * Shapes: logits [N, V], targets [N] (Int32Array) -> a scalar (shape []).
 *
 *   loss_i = -logSoftmax(logits_i)[targets_i] = logsumexp(logits_i) - logits_i[targets_i]
 *   "sum":  sum of loss_i over the rows whose target is not `ignoreIndex` (default -100)
 *   "mean": that sum divided by the number of such rows (the default)
 *
 * Decisions:
 *   - when every target is ignored (or N = 0), the loss is 0 and its gradient is 0 under both
 *     reductions, not NaN: a pipeline stage or a context-parallel chunk may hold only padding,
 *     and 0/0 would poison the whole step;
 *   - a target that is neither `ignoreIndex` nor in [0, V) is a ShapeError naming the row;
 *   - each row keeps its max and log(sum(exp(x - max))) in float64 for the backward pass, which
 *     recomputes each probability as exp(x - max - logSum) instead of storing N x V of them;
 *     the gradient p - onehot is formed in float64 and rounded once, so float32 stays accurate
 *     where p is close to 1.
 *
 * Backward, with G the gradient of the loss and c = G / count ("mean") or G ("sum"):
 *   dlogits_i = c * (softmax(logits_i) - onehot(targets_i)) for kept rows, 0 for ignored ones.
 */
import * as Autograd from "../Autograd.js"
import { maxAndLogSum } from "./RowStats.js"
import * as DType from "../DType.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * Options of crossEntropy.
 * @category models
 */
export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing (default -100). */
  readonly ignoreIndex?: number | undefined
  /** "mean" over kept rows (default) or "sum". */
  readonly reduction?: "mean" | "sum" | undefined
}

/**
 * Cross-entropy of `logits` [N, V] against `targets` [N], reduced to a scalar.
 * @category combinators
 */
export const crossEntropy = (logits: Tensor.Tensor, targets: Int32Array, options: CrossEntropyOptions = {}): Tensor.Tensor => {
  const ignoreIndex = options.ignoreIndex ?? -100
  const reduction = options.reduction ?? "mean"
  if (logits.rank !== 2) throw TensorError.shape("crossEntropy", `logits must be [N, V], got ${TensorError.formatShape(logits.shape)}`)
  const [n, v] = logits.shape as [number, number]
  if (targets.length !== n) {
    throw TensorError.shape("crossEntropy", `${targets.length} targets for logits ${TensorError.formatShape(logits.shape)} (needs one per row)`)
  }
  let count = 0
  for (let i = 0; i < n; i++) {
    const t = targets[i] as number
    if (t === ignoreIndex) continue
    if (t < 0 || t >= v) {
      throw TensorError.shape("crossEntropy", `target ${t} of row ${i} is outside [0, ${v}) and is not the ignore index ${ignoreIndex}`)
    }
    count++
  }
  const xs = logits.data
  // Per kept row, in float64: the max and log(sum(exp(x - max))), kept for the backward pass.
  const shift = new Float64Array(n)
  const logSum = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) {
    const t = targets[i] as number
    if (t === ignoreIndex) continue
    const base = i * v
    const [max, ls] = maxAndLogSum(xs, base, v)
    shift[i] = max
    logSum[i] = ls
    // (max - x_t) + logSum keeps the digits that (max + logSum) - x_t would lose for large logits.
    total += max - (xs[base + t] as number) + ls
  }
  const divisor = reduction === "mean" && count > 0 ? count : 1
  const out = DType.allocate(logits.dtype, 1)
  out[0] = count === 0 ? 0 : total / divisor
  return Autograd.result("crossEntropy", [logits], out, [], (g) => {
    const dx = DType.allocate(logits.dtype, logits.size)
    const c = count === 0 ? 0 : (g.data[0] as number) / divisor
    for (let i = 0; i < n && c !== 0; i++) {
      const t = targets[i] as number
      if (t === ignoreIndex) continue
      const base = i * v
      const max = shift[i] as number
      const ls = logSum[i] as number
      // c * (p_j - [j = t]) in float64, rounded once: accurate even where p_t is close to 1.
      for (let j = 0; j < v; j++) dx[base + j] = c * (Math.exp((xs[base + j] as number) - max - ls) - (j === t ? 1 : 0))
    }
    return [Tensor.fromStorage(dx, logits.shape, { device: g.device })]
  })
}
