// The `Kernels` set of src/tensor/kernels/Native.ts: loaded when the addon is built, the same
// results as the reference set on float32 storage (within 1e-5 as the kernel suites check in
// depth), float64 storage refused with a TypeError naming the kernel.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Addon from "../../src/native/Addon.js"
import { nativeKernels, nativeStatus } from "../../src/tensor/kernels/Native.js"
import { reference } from "../../src/tensor/kernels/Reference.js"
import { dim, expectClose, random, values } from "./tensorCases.js"

describe("nativeKernels", () => {
  test("available exactly when the addon is built, with a reason otherwise", () => {
    if (!Addon.isBuilt("pleat_cpu")) {
      expect(nativeKernels).toBeUndefined()
      expect(nativeStatus).toMatchObject({ available: false })
      return
    }
    expect(nativeStatus).toMatchObject({ available: true })
    expect(nativeKernels?.name).toBe("native")
  })

  const k = nativeKernels
  test.runIf(k !== undefined)("every kernel agrees with the reference on float32 storage", () => {
    if (k === undefined) return
    fc.assert(
      fc.property(dim(20), dim(20), dim(20), fc.integer(), (m, n, kk, seed) => {
        const rng = random(seed)
        const a = values(rng, m * kk)
        const b = values(rng, kk * n)
        const out = new Float32Array(m * n)
        const want = new Float64Array(m * n)
        const args = { batch: 1, m, n, k: kk, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false }
        k.matmul({ ...args, a: Float32Array.from(a), b: Float32Array.from(b), out })
        reference.matmul({ ...args, a, b, out: want })
        const bound = new Float64Array(m * n)
        reference.matmul({ ...args, a: a.map(Math.abs), b: b.map(Math.abs), out: bound })
        expectClose("matmul", out, want, 1e-5, bound, 1e-30)

        const rows = m
        const cols = n
        const x = values(() => rng(-4, 4), rows * cols)
        const x32 = Float32Array.from(x)
        const soft = new Float32Array(rows * cols)
        const wantSoft = new Float64Array(rows * cols)
        k.softmaxRows(x32, soft, rows, cols)
        reference.softmaxRows(x, wantSoft, rows, cols)
        expectClose("softmax", soft, wantSoft, 1e-5, undefined, 1e-37)

        const w = values(rng, cols)
        const normed = new Float32Array(rows * cols)
        const rstd = new Float64Array(rows)
        const wantNorm = new Float64Array(rows * cols)
        const wantRstd = new Float64Array(rows)
        k.rmsnormRows(x32, Float32Array.from(w), normed, rstd, rows, cols, 1e-5)
        reference.rmsnormRows(x, w, wantNorm, wantRstd, rows, cols, 1e-5)
        expectClose("rmsnorm", normed, wantNorm, 1e-5, undefined, 1e-30)
        expectClose("rstd", rstd, wantRstd, 1e-12)

        const act = new Float32Array(rows * cols)
        const wantAct = new Float64Array(rows * cols)
        k.swiglu(x32, Float32Array.from(x), act)
        reference.swiglu(x, x, wantAct)
        expectClose("swiglu", act, wantAct, 1e-5, undefined, 1e-35)

        if (rows > 0) {
          const index = Int32Array.from({ length: kk }, () => Math.floor(rng(0, rows)))
          const gathered = new Float32Array(kk * cols)
          const wantGather = new Float64Array(kk * cols)
          k.gatherRows(x32, index, gathered, cols)
          reference.gatherRows(x, index, wantGather, cols)
          expectClose("gather", gathered, wantGather, 0)
          const summed = new Float32Array(rows * cols)
          const wantSum = new Float64Array(rows * cols)
          k.scatterAddRows(gathered, index, summed, cols)
          reference.scatterAddRows(wantGather, index, wantSum, cols)
          expectClose("scatter", summed, wantSum, 1e-6)
        }
      }),
      { numRuns: 40 },
    )
  })

  test.runIf(k !== undefined)("float64 storage is refused with a TypeError naming the kernel and argument", () => {
    if (k === undefined) return
    const d = new Float64Array(4)
    const f = new Float32Array(4)
    expect(() => k.matmul({ a: d, b: f, out: f, batch: 1, m: 2, n: 2, k: 2, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false })).toThrow(
      new TypeError("native matmul: a must be float32 storage (Float32Array), got Float64Array"),
    )
    expect(() => k.softmaxRows(f, d, 2, 2)).toThrow(new TypeError("native softmaxRows: out must be float32 storage (Float32Array), got Float64Array"))
    expect(() => k.swiglu(d, f, f)).toThrow(TypeError)
  })
})
