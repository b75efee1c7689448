/**
 * ScoreFunctions: the router's score functions (semantics.md 2.2.4) as numbers in float64.
 *
 *   softmax       over all experts of a token (a row: `softmaxRow`)
 *   sigmoid       s = 1 / (1 + e^-x), elementwise; ds/dx = s (1 - s)
 *   sqrtsoftplus  s = sqrt(softplus(x)), softplus(x) = log(1 + e^x), elementwise (DeepSeek-V4's);
 *                 ds/dx = sigmoid(x) / (2 s)
 *
 * The elementwise ones share every rule of the router (bias for selection only, probs normalized
 * over the top-k when k > 1, aux-loss scores normalized over all experts): `elementwise` gives
 * each as a value and a derivative. Decisions: softplus is computed without overflow (x + log1p(e^-x)
 * above 0); where softplus underflows to 0 (x below ~-745) sqrtsoftplus is 0 and so is its
 * derivative (its limit, e^(x/2) / 2), not 0/0.
 */
import type * as DType from "../tensor/DType.js"

/**
 * The score functions of the router.
 * @category models
 */
export type ScoreFunction = "softmax" | "sigmoid" | "sqrtsoftplus"

/**
 * The score functions, for validation and messages.
 * @category configuration
 */
export const all: ReadonlyArray<ScoreFunction> = ["softmax", "sigmoid", "sqrtsoftplus"]

/** sigmoid as 1 / (1 + e^-x): exact 0.5 at +-tiny x, 0 (not NaN) below -709 in float64. */
export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x))

/** log(1 + e^x) without overflow. */
const softplus = (x: number): number => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))

/**
 * An elementwise score function: its value, and its derivative at x given the value s there.
 * @category models
 */
export interface Elementwise {
  readonly value: (x: number) => number
  readonly derivative: (x: number, s: number) => number
}

/**
 * The elementwise score functions.
 * @category configuration
 */
export const elementwise: Readonly<Record<Exclude<ScoreFunction, "softmax">, Elementwise>> = {
  sigmoid: { value: sigmoid, derivative: (_x, s) => s * (1 - s) },
  sqrtsoftplus: { value: (x) => Math.sqrt(softplus(x)), derivative: (x, s) => (s === 0 ? 0 : sigmoid(x) / (2 * s)) },
}

/** out[0..n) = softmax(x[base..base+n)), in float64 (max-subtracted, summed by index). */
export const softmaxRow = (x: DType.Storage, base: number, n: number, out: Float64Array): void => {
  let max = Number.NEGATIVE_INFINITY
  for (let j = 0; j < n; j++) max = Math.max(max, x[base + j] as number)
  let sum = 0
  for (let j = 0; j < n; j++) {
    const v = Math.exp((x[base + j] as number) - max)
    out[j] = v
    sum += v
  }
  for (let j = 0; j < n; j++) out[j] = (out[j] as number) / sum
}
