/**
 * dtypes: runs an op in float32 and in float64 on the same (float32-representable) inputs and
 * reports how far the two results and gradients are apart.
 *
 * Inputs are rounded to float32 first, so both runs see identical values and the difference is
 * the op's own float32 error. Gradients are seeded with the same fixed random tensor R in both.
 *
 * Outputs and gradients are compared tensor-wise: the largest error over the largest magnitude
 * of that tensor (floor 1e-3). The native float32 kernels accumulate in float32 (FMA), so an
 * output that is a sum of cancelling terms (attention's weighted sum of values) is accurate to
 * float32 relative to the terms, not to its own small value; likewise a backward rule that
 * reuses a rounded float32 output (softmax's y * (g - sum(g * y))) is accurate relative to the
 * row, not to each small entry. (Element-wise, seed 999996 of the attention property measured
 * 8.4e-5 on an output of 1e-3 whose error was 1.3 float32 ulps of its terms.)
 */
import type * as DType from "../../src/tensor/DType.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "./gradcheck.js"

export interface DTypeAgreement {
  /** max |out32 - out64| / max |out64| (floor 1e-3). */
  readonly forward: number
  /** max |g32 - g64| / max |g64| over each input's gradient (the op's gradient scale when that is ~0). */
  readonly backward: number
  readonly worst: string
}

/** `t`'s values rounded to float32, stored in `dtype`. */
export const asDType = (t: Tensor.Tensor, dtype: DType.DType): Tensor.Tensor => Tensor.fromArray(Float32Array.from(t.data), t.shape, { dtype })

export const dtypeAgreement = (f: (inputs: ReadonlyArray<Tensor.Tensor>) => Tensor.Tensor, inputs: ReadonlyArray<Tensor.Tensor>): DTypeAgreement => {
  const run = (dtype: DType.DType) => {
    const tape = Tape.make({ name: dtype })
    const params = inputs.map((t) => tape.parameter(asDType(t, dtype)))
    const out = f(params)
    if (out.requiresGrad) tape.backward(out, { gradient: asDType(uniform(out.shape, 11), dtype) })
    return { out, grads: params.map((p) => p.grad) }
  }
  const a = run("float32")
  const b = run("float64")
  let forward = 0
  let backward = 0
  let worst = "none"
  let outScale = 1e-3
  for (let i = 0; i < b.out.size; i++) outScale = Math.max(outScale, Math.abs(b.out.data[i] as number))
  for (let i = 0; i < b.out.size; i++) {
    const e = Math.abs((a.out.data[i] as number) - (b.out.data[i] as number)) / outScale
    if (e > forward || Number.isNaN(e)) {
      forward = Number.isNaN(e) ? Number.POSITIVE_INFINITY : e
      worst = `output ${i}: float32 ${a.out.data[i]}, float64 ${b.out.data[i]}`
    }
  }
  // The scale of the op's gradients: a gradient that is exactly 0 in float64 (one visible key,
  // say) is compared at the scale of the op's other gradients, where float32 rounding lives.
  let scale = 1e-3
  for (const g of b.grads) if (g !== undefined) for (let i = 0; i < g.size; i++) scale = Math.max(scale, Math.abs(g.data[i] as number))
  b.grads.forEach((g64, j) => {
    const g32 = a.grads[j]
    if (g64 === undefined || g32 === undefined) return
    let magnitude = 1e-3
    for (let i = 0; i < g64.size; i++) magnitude = Math.max(magnitude, Math.abs(g64.data[i] as number))
    if (magnitude <= 1e-3) magnitude = scale
    for (let i = 0; i < g64.size; i++) {
      const e = Math.abs((g32.data[i] as number) - (g64.data[i] as number)) / magnitude
      if (e > backward || Number.isNaN(e)) {
        backward = Number.isNaN(e) ? Number.POSITIVE_INFINITY : e
        worst = `gradient of input ${j} element ${i}: float32 ${g32.data[i]}, float64 ${g64.data[i]}`
      }
    }
  })
  return { forward, backward, worst }
}
