/**
 * gradcheck: compares autograd gradients with central finite differences, in float64.
 *
 * The op's output is projected onto a fixed random tensor R (loss = sum(out * R)), so every
 * output element counts and non-scalar outputs need no reduction op of their own. Each input
 * element is nudged by +-h and the loss recomputed without the tape.
 */
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

export interface GradcheckResult {
  readonly maxRelativeError: number
  readonly worst: string
}

/** A deterministic pseudo-random stream (mulberry32), so failures reproduce from the seed. */
export const rng = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A float64 tensor of uniform values in [lo, hi). */
export const uniform = (shape: ReadonlyArray<number>, seed: number, lo = -1, hi = 1): Tensor.Tensor => {
  const next = rng(seed)
  const n = Tensor.sizeOf(shape)
  const values = new Array<number>(n)
  for (let i = 0; i < n; i++) values[i] = lo + (hi - lo) * next()
  return Tensor.fromArray(values, shape, { dtype: "float64" })
}

/**
 * Relative error |a - n| / max(|a|, |n|, floor): relative for gradients of ordinary size,
 * absolute below `floor` (a relative error of two numbers near 0 means nothing).
 */
export const relativeError = (a: number, n: number, floor = 1e-3): number => Math.abs(a - n) / Math.max(Math.abs(a), Math.abs(n), floor)

export const gradcheck = (
  f: (inputs: ReadonlyArray<Tensor.Tensor>) => Tensor.Tensor,
  inputs: ReadonlyArray<Tensor.Tensor>,
  options: { readonly h?: number; readonly seed?: number; readonly wrt?: ReadonlyArray<number> } = {},
): GradcheckResult => {
  const h = options.h ?? 1e-5
  const wrt = options.wrt ?? inputs.map((_, i) => i)
  const tape = Tape.make({ name: "gradcheck" })
  const params = inputs.map((t, i) => (wrt.includes(i) ? tape.parameter(Tensor.detachCopy(t)) : Tensor.detachCopy(t)))
  const out = f(params)
  const r = uniform(out.shape, options.seed ?? 7)
  if (out.requiresGrad) tape.backward(out, { gradient: r })
  const project = (o: Tensor.Tensor) => {
    let s = 0
    for (let i = 0; i < o.size; i++) s += (o.data[i] as number) * (r.data[i] as number)
    return s
  }
  let maxRelativeError = 0
  let worst = "none"
  for (const i of wrt) {
    const base = Tensor.detachCopy(inputs[i] as Tensor.Tensor)
    const analytic = (params[i] as Tensor.Tensor).grad
    for (let j = 0; j < base.size; j++) {
      const x = base.data[j] as number
      const at = (v: number) => {
        const shifted = inputs.map((t, k) => (k === i ? base : Tensor.detachCopy(t)))
        base.data[j] = v
        const value = project(f(shifted))
        base.data[j] = x
        return value
      }
      const numeric = (at(x + h) - at(x - h)) / (2 * h)
      const a = analytic === undefined ? 0 : (analytic.data[j] as number)
      const e = relativeError(a, numeric)
      if (e > maxRelativeError || Number.isNaN(e)) {
        maxRelativeError = Number.isNaN(e) ? Number.POSITIVE_INFINITY : e
        worst = `input ${i} element ${j}: autograd ${a}, finite difference ${numeric}`
      }
    }
  }
  return { maxRelativeError, worst }
}
