// The native AdamW kernel (cuda/src/kernels/adamw.h) gives the same bits as the TypeScript loop
// it replaces (Optimizer.updateRangeLoop), on random runs of weights, gradients and moments in
// float32 and float64, at random offsets into larger arrays, for random steps, learning rates,
// clip scales and decays, with runs long enough to be split over the thread pool; the elements
// outside the run are untouched, on each ISA's build of the loop (AVX-512, AVX2, baseline) and one
// or two threads. Training therefore computes the same steps with or without
// the addon (every bit-exact resume and verify test relies on it).
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import { configs, pin, unpin } from "../native/tensorCases.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import * as Optimizer from "../../src/train/Optimizer.js"

const kernel = CpuOptional.adamwKernel()

const caseArb = fc.record({
  dtype: fc.constantFrom("float32" as const, "float64" as const),
  n: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(1 << 18, (1 << 18) + 7)),
  offset: fc.integer({ min: 0, max: 5 }),
  t: fc.integer({ min: 1, max: 1000 }),
  lr: fc.double({ min: 1e-6, max: 1e-1, noNaN: true }),
  clip: fc.double({ min: 1e-3, max: 1, noNaN: true }),
  decay: fc.constantFrom(0, 0.01, 0.1),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
})

/** A deterministic generator of values over many binades (and some zeros). */
const values = (seed: number) => {
  let x = seed
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    const u = x / 2 ** 32
    return u < 0.05 ? 0 : (u - 0.5) * 2 ** Math.floor(u * 40 - 20)
  }
}

describe("native AdamW", () => {
  afterAll(unpin)
  test.skipIf(kernel === undefined).each(configs)("equals the TypeScript loop bit for bit (%s, %i threads)", (isa, threads) => {
    pin(isa, threads)
    fc.assert(
      fc.property(caseArb, (c) => {
        const next = values(c.seed)
        const size = c.n + 2 * c.offset
        const make = () => (c.dtype === "float32" ? new Float32Array(size) : new Float64Array(size)).map(() => next())
        const w = make()
        const g = make()
        const m = new Float32Array(size).map(() => next())
        const v = new Float32Array(size).map(() => Math.abs(next()))
        const config = Optimizer.defaults(1000)
        const ts = { w: w.slice(), m: m.slice(), v: v.slice() }
        Optimizer.updateRangeLoop(config, c.t, c.lr, c.clip, c.decay, c.n, ts.w, c.offset, g, c.offset, { m: ts.m, v: ts.v }, c.offset)
        Optimizer.updateRange(config, c.t, c.lr, c.clip, c.decay, c.n, w, c.offset, g, c.offset, { m, v }, c.offset)
        const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
        for (const [native, loop] of [
          [w, ts.w],
          [m, ts.m],
          [v, ts.v],
        ] as const)
          expect(bytes(native).equals(bytes(loop))).toBe(true)
      }),
      { numRuns: 12 },
    )
  })

  test.skipIf(kernel === undefined)("the kernel refuses weights and gradients of two dtypes, naming them", () => {
    expect(() =>
      kernel?.(new Float32Array(2), new Float64Array(2), new Float32Array(2), new Float32Array(2), {
        beta1: 0.9,
        beta2: 0.95,
        c1: 0.1,
        c2: 0.05,
        eps: 1e-8,
        lr: 0.1,
        clip: 1,
        decay: 0,
      }),
    ).toThrow(/w and g must both be Float32Array or both Float64Array/)
  })
})
