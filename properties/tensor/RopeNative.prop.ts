// The native RoPE rotation (native/CpuElementwise ropeKernel, cuda/src/kernels/rope.h) gives the
// same bits as tensor/kernels/RopeRotate.ts's loop (rotateLoop) in float32 and float64, for tables shared
// by the batch (S rows) or one row per token (B * S), both signs, values across many magnitudes
// with zeros of both signs, infinities, NaN and subnormals; and it refuses inconsistent
// arguments before writing anything.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { ropeKernel } from "../../src/native/CpuElementwise.js"
import { rotateLoop } from "../../src/tensor/kernels/RopeRotate.js"

const kernel = ropeKernel()
const specials = [0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 1e-40, -3e-39, 5e-324]

const fill = <A extends Float32Array | Float64Array>(out: A, seed: number): A => {
  let x = seed >>> 0 || 1
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x % 89 === 0 ? (specials[x % specials.length] as number) : (x / 2 ** 32 - 0.5) * 2 ** ((x % 31) - 15)
  }
  return out
}

const caseArb = fc.record({
  dtype: fc.constantFrom("float32" as const, "float64" as const),
  b: fc.integer({ min: 1, max: 3 }),
  s: fc.integer({ min: 1, max: 20 }),
  heads: fc.integer({ min: 1, max: 4 }),
  half: fc.integer({ min: 1, max: 65 }),
  perToken: fc.boolean(),
  sign: fc.constantFrom(1 as const, -1 as const),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
})

const same = (x: Float32Array | Float64Array, y: Float32Array | Float64Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]))

describe.skipIf(kernel === undefined)("native RoPE rotation", () => {
  test("equals the TypeScript loop bit for bit", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const d = 2 * c.half
        const tableRows = c.perToken ? c.b * c.s : c.s
        const n = c.b * c.s * c.heads * d
        const x = fill(c.dtype === "float32" ? new Float32Array(n) : new Float64Array(n), c.seed)
        const cos = fill(new Float64Array(tableRows * c.half), c.seed + 1)
        const sin = fill(new Float64Array(tableRows * c.half), c.seed + 2)
        const want = rotateLoop(x, c.dtype === "float32" ? new Float32Array(n) : new Float64Array(n), [c.b, c.s, c.heads, d], { cos, sin, rows: tableRows }, c.sign)
        const got = c.dtype === "float32" ? new Float32Array(n) : new Float64Array(n)
        kernel?.(x, cos, sin, got, { b: c.b, s: c.s, heads: c.heads, d, tableRows }, c.sign)
        expect(same(got, want)).toBe(true)
      }),
      { numRuns: 200 },
    )
  })

  test("inconsistent arguments throw before anything is written", () => {
    const x = new Float32Array(2 * 3 * 4)
    const cos = new Float64Array(2 * 2)
    const out = new Float32Array(x.length).fill(7)
    const dims = { b: 1, s: 2, heads: 3, d: 4, tableRows: 2 }
    expect(() => kernel?.(x, cos, cos, out, { ...dims, d: 3 }, 1)).toThrow(RangeError)
    expect(() => kernel?.(x, cos, cos, out, { ...dims, tableRows: 3 }, 1)).toThrow(/tableRows/)
    expect(() => kernel?.(x, cos, new Float64Array(3), out, dims, 1)).toThrow(/sin/)
    expect(() => kernel?.(x, cos, cos, new Float32Array(5), dims, 1)).toThrow(/out/)
    expect(() => kernel?.(x, cos, cos, new Float64Array(x.length), dims, 1)).toThrow(TypeError)
    expect(() => kernel?.(x, cos, cos, x, dims, -1)).toThrow(/overlap/)
    expect(out.every((v) => v === 7)).toBe(true)
  })
})
