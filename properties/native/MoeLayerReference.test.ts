// scripts/moe-layer-reference.mjs, the float64 MoE layer that scripts/device-check holds the GPU's
// timed layer (cuda/src/moe_layer_timing.cc) against: without its bf16 roundings it is a smooth
// function of its inputs, and its gradients (dx and the three expert weights' gradients, the
// routing held fixed as on the device) equal central finite differences of sum(out * dy).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
// @ts-expect-error: a plain .mjs script without types (it runs on the GPU machine with no build step)
import { reference, relativeError } from "../../scripts/moe-layer-reference.mjs"

interface Shape {
  readonly tokens: number
  readonly hidden: number
  readonly ffn: number
  readonly experts: number
  readonly topk: number
}
type Grads = Record<"out" | "dx" | "dwg" | "dwu" | "dwd", Float64Array>
const run = reference as (inputs: Record<string, Float32Array | Float64Array | Int32Array>, shape: Shape) => Grads

const inputsFor = (shape: Shape, seed: number) => {
  let s = seed
  const random = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
  const { tokens: T, hidden: H, ffn: F, experts: E, topk: k } = shape
  const floats = (n: number, scale: number) => Float64Array.from({ length: n }, () => random() * scale)
  const chosen = new Int32Array(T * k)
  const probs = new Float64Array(T * E)
  for (let t = 0; t < T; t++)
    for (let j = 0; j < k; j++) {
      const e = (t + j * 2) % E
      chosen[t * k + j] = e
      probs[t * E + e] = 0.25 + 0.5 * Math.abs(random())
    }
  return { x: floats(T * H, 1), dy: floats(T * H, 1), wg: floats(E * H * F, 0.5), wu: floats(E * H * F, 0.5), wd: floats(E * F * H, 0.5), chosen, probs }
}

const loss = (inputs: ReturnType<typeof inputsFor>, shape: Shape): number => {
  const { out } = run(inputs, shape)
  return out.reduce((a, v, i) => a + v * (inputs.dy[i] as number), 0)
}

describe("the float64 MoE layer of the GPU check", () => {
  test("its gradients equal central finite differences of sum(out * dy)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 3 }), (seed, topk) => {
        const shape = { tokens: 3, hidden: 4, ffn: 5, experts: 4, topk }
        const inputs = inputsFor(shape, seed)
        const grads = run(inputs, shape)
        for (const name of ["x", "wg", "wu", "wd"] as const) {
          const grad = name === "x" ? grads.dx : grads[`d${name}` as "dwg" | "dwu" | "dwd"]
          const values = inputs[name]
          for (let i = 0; i < values.length; i += 3) {
            const keep = values[i] as number
            const h = 1e-6
            values[i] = keep + h
            const up = loss(inputs, shape)
            values[i] = keep - h
            const down = loss(inputs, shape)
            values[i] = keep
            const numeric = (up - down) / (2 * h)
            expect(Math.abs((grad[i] as number) - numeric), `${name}[${i}]`).toBeLessThanOrEqual(1e-7 * Math.max(1, Math.abs(numeric)))
          }
        }
      }),
      { numRuns: 20 },
    )
  })

  test("relativeError: the largest difference over the reference's largest value", () => {
    expect(relativeError(Float64Array.of(1, 2.5), Float64Array.of(1, 2))).toBeCloseTo(0.25)
    expect(relativeError(Float64Array.of(0), Float64Array.of(0))).toBe(0)
  })
})
