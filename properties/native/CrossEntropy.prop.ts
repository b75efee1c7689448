// The native cross-entropy kernels (native/CpuCrossEntropy) against the TypeScript loops they
// replace in the vocabulary-parallel loss (attention/VocabParallel.ts), on random float32 logits
// (wide ranges, now and then NaN or infinities in a row), rows and widths that cross the kernel
// pool's threshold, random targets with ignored rows and a vocabulary offset: the row max is the
// same value, the sums of exponentials agree to a few ulp of float64 (std::exp and Math.exp may
// differ in the last bit), and the gradient to float32 rounding.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { crossEntropyKernels } from "../../src/native/CpuCrossEntropy.js"

const kernels = crossEntropyKernels()

const caseArb = fc.record({
  rows: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 100, max: 700 })),
  cols: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 300, max: 900 })),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  spread: fc.constantFrom(1, 10, 80),
  start: fc.integer({ min: 0, max: 3000 }),
  scale: fc.double({ min: -2, max: 2, noNaN: true }),
  specials: fc.boolean(),
})

const close = (got: number, want: number, rel: number) => Object.is(got, want) || Math.abs(got - want) <= rel * Math.abs(want) + 1e-300

describe.skipIf(kernels === undefined)("native cross-entropy kernels", () => {
  test("row max, sums of exponentials and the gradient agree with the loops", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        let s = c.seed
        const next = () => {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0
          return s / 2 ** 32
        }
        const x = Float32Array.from({ length: c.rows * c.cols }, () => (next() - 0.5) * c.spread)
        if (c.specials && x.length > 0) x[Math.floor(next() * x.length)] = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][Math.floor(next() * 3)] as number
        const targets = Int32Array.from({ length: c.rows }, () => (next() < 0.2 ? -100 : c.start + Math.floor(next() * (c.cols + 2))))
        const max = new Float64Array(c.rows)
        kernels?.rowMax(x, c.rows, c.cols, max)
        const sum = new Float64Array(c.rows)
        kernels?.rowSumExp(x, c.rows, c.cols, max, sum)
        const logSum = Float64Array.from(sum, (v, r) => Math.log(v) + (max[r] as number))
        const d = new Float32Array(c.rows * c.cols).fill(7)
        kernels?.grad(x, c.rows, c.cols, logSum, targets, -100, c.start, c.scale, d)
        // The first disagreement, if any (one expect per case: per element they took most of a minute).
        let first = ""
        for (let r = 0; r < c.rows && first === ""; r++) {
          let m = Number.NEGATIVE_INFINITY
          let e = 0
          for (let j = 0; j < c.cols; j++) m = Math.max(m, x[r * c.cols + j] as number)
          for (let j = 0; j < c.cols; j++) e += Math.exp((x[r * c.cols + j] as number) - m)
          if (!Object.is(max[r], m)) first = `row ${r}: max ${max[r]}, want ${m}`
          else if (!close(sum[r] as number, e, 1e-14)) first = `row ${r}: sum of exponentials ${sum[r]}, want ${e}`
          for (let j = 0; j < c.cols && first === ""; j++) {
            const t = targets[r] as number
            const want = t === -100 ? 0 : Math.fround(c.scale * (Math.exp((x[r * c.cols + j] as number) - (logSum[r] as number)) - (c.start + j === t ? 1 : 0)))
            const got = d[r * c.cols + j] as number
            if (!(close(got, want, 2 ** -23) || Math.abs(got - want) <= 1e-37)) first = `row ${r} column ${j}: gradient ${got}, want ${want}`
          }
        }
        expect(first).toBe("")
      }),
      { numRuns: 60 },
    )
  })

  test("bad arguments are typed errors before anything is written", () => {
    const x = new Float32Array(6)
    expect(() => kernels?.rowMax(x, 2, 4, new Float64Array(2))).toThrow(RangeError)
    expect(() => kernels?.rowMax(x, 2, 3, new Float64Array(3))).toThrow(RangeError)
    expect(() => kernels?.rowMax(new Float64Array(6) as unknown as Float32Array, 2, 3, new Float64Array(2))).toThrow(TypeError)
    const d = new Float32Array(6).fill(5)
    expect(() => kernels?.grad(x, 2, 3, new Float64Array(2), new Int32Array(3), -100, 0, 1, d)).toThrow(RangeError)
    expect(Array.from(d)).toEqual([5, 5, 5, 5, 5, 5])
  })
})
