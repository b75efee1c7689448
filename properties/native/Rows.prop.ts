// Properties of the native row kernels (gatherRows, scatterAddRows, softmaxRows, rmsnormRows,
// swiglu, and the RMSNorm and swiglu backwards) against the TypeScript reference kernels run in float64 on the same inputs, on every ISA
// with 1 and 2 threads, on views in guarded plain / shared buffers. gather is exact; scatter-add
// is bit-identical to the sequential float32 loop; the others are within 1e-5 relative. Sizes
// include some above the 1 MiB threshold where the kernels split across threads.
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import { reference } from "../../src/tensor/kernels/Reference.js"
import { configs, dim, expectClose, expectSame, guardsIntact, pin, place32, placeI32, placement, random, unpin, values, wide } from "./tensorCases.js"

// Mostly small; now and then up to 1200 rows of up to 300 columns, which crosses the 1 MiB of
// traffic above which the kernels split across threads.
const rowsArb = fc.oneof({ arbitrary: dim(40), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 1200 }), weight: 1 })
const colsArb = fc.oneof({ arbitrary: dim(70), weight: 3 }, { arbitrary: fc.integer({ min: 64, max: 300 }), weight: 1 })
const seed = fc.integer()

const gatherCase = fc.record({ srcRows: fc.integer({ min: 1, max: 50 }), n: rowsArb, cols: colsArb, seed, ps: placement, pi: placement, po: placement })

afterAll(unpin)

describe.each(configs)("row kernels on %s, %d thread(s)", (isa, threads) => {
  test("gatherRows: exact copies of the indexed rows", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(gatherCase, ({ srcRows, n, cols, seed, ps, pi, po }) => {
        const rng = random(seed)
        const src = place32(values(rng, srcRows * cols), ps)
        const index = placeI32(
          Array.from({ length: n }, () => Math.floor(rng(0, srcRows))),
          pi,
        )
        const out = place32(new Float32Array(n * cols).fill(Number.NaN), po)
        const want = new Float64Array(n * cols)
        reference.gatherRows(wide(src), index, want, cols)
        Cpu.gatherRows(src, index, out, cols)
        expectSame("out", out, want)
        expect(guardsIntact(out) && guardsIntact(src)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test("scatterAddRows: bit-identical to the sequential float32 loop (repeated targets included)", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(gatherCase, ({ srcRows, n, cols, seed, ps, pi, po }) => {
        const rng = random(seed)
        // Few target rows, so most are hit many times and the order of the adds matters.
        const targets = Math.max(1, Math.floor(srcRows / 4))
        const src = place32(
          values(() => rng(-1e3, 1e3), n * cols),
          ps,
        )
        const index = placeI32(
          Array.from({ length: n }, () => Math.floor(rng(0, targets))),
          pi,
        )
        const init = values(rng, targets * cols)
        const out = place32(init, po)
        const want = Float32Array.from(init)
        for (let i = 0; i < n; i++) {
          const d = (index[i] as number) * cols
          for (let j = 0; j < cols; j++) want[d + j] = Math.fround((want[d + j] as number) + (src[i * cols + j] as number))
        }
        const loose = Float64Array.from(init)
        reference.scatterAddRows(wide(src), index, loose, cols)
        Cpu.scatterAddRows(src, index, out, cols)
        expectSame("out", out, want)
        expect(guardsIntact(out)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test("softmaxRows: within 1e-5 relative of the float64 reference; -Infinity logits give 0", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(rowsArb, colsArb, seed, fc.double({ min: 0.1, max: 60, noNaN: true }), placement, placement, (rows, cols, s, spread, px, po) => {
        const rng = random(s)
        const data = values(() => rng(-spread, spread), rows * cols)
        // Masked logits: some -Infinity entries, never a whole row (that row would be NaN).
        for (let r = 0; r < rows; r++) if (cols > 1 && rng(0, 1) < 0.3) data[r * cols + Math.floor(rng(0, cols - 1))] = Number.NEGATIVE_INFINITY
        const x = place32(data, px)
        const out = place32(new Float32Array(rows * cols), po)
        const want = new Float64Array(rows * cols)
        reference.softmaxRows(data, want, rows, cols)
        Cpu.softmaxRows(x, out, rows, cols)
        // 1e-37 absolute: results below the smallest normal float (1.2e-38) may flush to 0.
        expectClose("out", out, want, 1e-5, undefined, 1e-37)
        expect(guardsIntact(out)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test("sizes above the 1 MiB threshold (split across threads when there are two)", () => {
    pin(isa, threads)
    const rng = random(11)
    const rows = 700
    const cols = 263 // not a multiple of any vector width
    const data = values(() => rng(-20, 20), rows * cols)
    const x = Float32Array.from(data)
    const index = Int32Array.from({ length: rows }, () => Math.floor(rng(0, 50)))
    const gathered = new Float32Array(rows * cols)
    Cpu.gatherRows(x, index, gathered, cols)
    const wantGather = new Float64Array(rows * cols)
    reference.gatherRows(data, index, wantGather, cols)
    expectSame("gather", gathered, wantGather)
    const summed = new Float32Array(50 * cols)
    Cpu.scatterAddRows(x, index, summed, cols)
    const wantSum = new Float32Array(50 * cols)
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) wantSum[(index[i] as number) * cols + j] = Math.fround((wantSum[(index[i] as number) * cols + j] as number) + (x[i * cols + j] as number))
    expectSame("scatter", summed, wantSum)
    const soft = new Float32Array(rows * cols)
    const wantSoft = new Float64Array(rows * cols)
    Cpu.softmaxRows(x, soft, rows, cols)
    reference.softmaxRows(data, wantSoft, rows, cols)
    expectClose("softmax", soft, wantSoft, 1e-5, undefined, 1e-37)
    const w = values(rng, cols)
    const normed = new Float32Array(rows * cols)
    const rstd = new Float64Array(rows)
    const wantNorm = new Float64Array(rows * cols)
    Cpu.rmsnormRows(x, Float32Array.from(w), normed, rstd, rows, cols, 1e-6)
    reference.rmsnormRows(data, w, wantNorm, new Float64Array(rows), rows, cols, 1e-6)
    expectClose("rmsnorm", normed, wantNorm, 1e-5, undefined, 1e-30)
    const up = values(rng, rows * cols)
    const act = new Float32Array(rows * cols)
    const wantAct = new Float64Array(rows * cols)
    Cpu.swiglu(x, Float32Array.from(up), act)
    reference.swiglu(data, up, wantAct)
    expectClose("swiglu", act, wantAct, 1e-5, undefined, 1e-35)
  })

  test("gatherRows of 16 MiB and more (non-temporal stores), out at an odd offset", () => {
    pin(isa, threads)
    const rows = 4200
    const cols = 1001
    const src = Float32Array.from({ length: 300 * cols }, (_, i) => i * 0.5)
    const index = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % 300)
    const out = place32(new Float32Array(rows * cols), { shared: true, before: 1, after: 3 })
    Cpu.gatherRows(src, index, out, cols)
    for (let i = 0; i < rows; i++) {
      const s = (index[i] as number) * cols
      // Every column of every 37th row (heads, bodies and tails at all alignments), first and
      // last column of the others.
      const step = i % 37 === 0 ? 1 : cols - 1
      for (let j = 0; j < cols; j += step) if (out[i * cols + j] !== src[s + j]) throw new Error(`row ${i} col ${j}`)
    }
    expect(guardsIntact(out)).toBe(true)
  })

  test("softmaxRows in place (out is x)", () => {
    pin(isa, threads)
    const data = values(random(7), 5 * 33)
    const x = Float32Array.from(data)
    const want = new Float64Array(data.length)
    reference.softmaxRows(data, want, 5, 33)
    Cpu.softmaxRows(x, x, 5, 33)
    expectClose("out", x, want, 1e-5, undefined, 1e-37)
  })

  test("rmsnormRows: out within 1e-5, rstd as Float64Array or Float32Array", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(rowsArb, colsArb, seed, fc.boolean(), fc.double({ min: 0, max: 1, noNaN: true }), placement, (rows, cols, s, wideRstd, eps, po) => {
        const rng = random(s)
        const data = values(() => rng(-3, 3), rows * cols)
        const w = values(rng, cols)
        const x = place32(data, { shared: true, before: 1, after: 1 })
        const weight = place32(w, { shared: false, before: 2, after: 0 })
        const out = place32(new Float32Array(rows * cols), po)
        const rstd = wideRstd ? new Float64Array(rows) : new Float32Array(rows)
        const want = new Float64Array(rows * cols)
        const wantRstd = new Float64Array(rows)
        reference.rmsnormRows(data, w, want, wantRstd, rows, cols, eps)
        Cpu.rmsnormRows(x, weight, out, rstd, rows, cols, eps)
        expectClose("out", out, want, 1e-5, undefined, 1e-30)
        // A float32 rstd is the float64 one rounded (it may overflow to Infinity for tiny eps).
        expectClose("rstd", rstd, wideRstd ? wantRstd : Float32Array.from(wantRstd), wideRstd ? 1e-12 : 1e-7)
        expect(guardsIntact(out)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test("swiglu: within 1e-5 relative; out may be gate or up", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(
        fc.oneof({ arbitrary: dim(70), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 200_000 }), weight: 1 }),
        seed,
        fc.constantFrom("fresh", "gate", "up"),
        placement,
        (n, s, where, pg) => {
          const rng = random(s)
          const g = values(() => rng(-30, 30), n)
          const u = values(() => rng(-5, 5), n)
          const gate = place32(g, pg)
          const up = place32(u, { shared: true, before: 3, after: 2 })
          const out = where === "gate" ? gate : where === "up" ? up : new Float32Array(n)
          const want = new Float64Array(n)
          reference.swiglu(g, u, want)
          Cpu.swiglu(gate, up, out)
          expectClose("out", out, want, 1e-5, undefined, 1e-35)
          expect(guardsIntact(gate) && guardsIntact(up)).toBe(true)
        },
      ),
      { numRuns: 30 },
    )
  })

  test("rmsnorm backward: the same bits as the reference loop (dx in float32, dw in float64)", () => {
    pin(isa, threads)
    const kernel = CpuOptional.rmsnormBackwardKernel()
    if (kernel === undefined) return
    fc.assert(
      fc.property(rowsArb, colsArb, seed, fc.constantFrom("both", "dx", "dw"), placement, (rows, cols, s, want, px) => {
        const rng = random(s)
        const x = place32(values(rng, rows * cols), px)
        const w = Float32Array.from(values(rng, cols))
        const g = Float32Array.from(values(rng, rows * cols))
        const rstd = Float64Array.from({ length: rows }, () => rng(0.1, 3))
        const dx = want === "dw" ? undefined : new Float32Array(rows * cols).fill(Number.NaN)
        const dw = want === "dx" ? undefined : new Float64Array(cols).fill(Number.NaN)
        const refDx = new Float32Array(rows * cols)
        const refDw = new Float64Array(cols)
        reference.rmsnormBackward(Float32Array.from(x), w, g, rstd, rows, cols, refDx, refDw)
        kernel(x, w, g, rstd, rows, cols, dx, dw)
        if (dx !== undefined) expectSame("dx", dx, refDx)
        if (dw !== undefined) expectSame("dw", dw, refDw)
        expect(guardsIntact(x)).toBe(true)
      }),
      { numRuns: 30 },
    )
  })

  test("swiglu backward: the float64 formula rounded once (within 1 ulp of float32); either gradient may be skipped", () => {
    pin(isa, threads)
    const kernel = CpuOptional.swigluBackwardKernel()
    if (kernel === undefined) return
    fc.assert(
      fc.property(
        fc.oneof({ arbitrary: dim(70), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 200_000 }), weight: 1 }),
        seed,
        fc.constantFrom("both", "gate", "up"),
        placement,
        (n, s, want, pg) => {
          const rng = random(s)
          const g = values(() => rng(-30, 30), n)
          const u = values(() => rng(-5, 5), n)
          const dy = values(() => rng(-2, 2), n)
          const gate = place32(g, pg)
          const dGate = want === "up" ? undefined : place32(new Float32Array(n).fill(Number.NaN), { shared: false, before: 2, after: 3 })
          const dUp = want === "gate" ? undefined : new Float32Array(n).fill(Number.NaN)
          const refGate = new Float64Array(n)
          const refUp = new Float64Array(n)
          reference.swigluBackward(g, u, dy, refGate, refUp)
          kernel(gate, Float32Array.from(u), Float32Array.from(dy), dGate, dUp)
          // The same float64 arithmetic; only the exponential's last bit may differ, so at most
          // one float32 ulp (2^-23 relative) after the one rounding.
          if (dGate !== undefined) expectClose("dGate", dGate, Float32Array.from(refGate), 2 ** -23, undefined, 1e-40)
          if (dUp !== undefined) expectClose("dUp", dUp, Float32Array.from(refUp), 2 ** -23, undefined, 1e-40)
          expect(guardsIntact(gate) && (dGate === undefined || guardsIntact(dGate))).toBe(true)
        },
      ),
      { numRuns: 30 },
    )
  })
})

// The float64 kernels' vector paths take the same operations in the same order, four lanes at a
// time with AVX2 and eight with AVX-512 (cuda/src/kernels/vmath_pd.h): the same bits, tails and
// NaN included. Runs where the CPU has both.
const vectorIsas = configs.map(([isa]) => isa).filter((isa, k, all) => isa !== "scalar" && all.indexOf(isa) === k)
test.skipIf(vectorIsas.length < 2)("swiglu backward and the gated activation: AVX2 gives AVX-512's bits", () => {
  const swiglu = CpuOptional.swigluBackwardKernel()
  const glu = CpuOptional.gatedActivationKernels()
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 5000 }), seed, fc.constantFrom(undefined, 0.8, 7), (n, s, limit) => {
      const rng = random(s)
      const inputs = [0, 1, 2].map(() => Float32Array.from(values(() => (rng(0, 1) < 0.01 ? Number.NaN : rng(-40, 40)), n)))
      const [gate, up, dy] = inputs as [Float32Array, Float32Array, Float32Array]
      const o = { alpha: 1.702, offset: 1, limit }
      const run = (isa: Cpu.Isa) => {
        pin(isa, 1)
        const outs = [0, 1, 2, 3, 4].map(() => new Float32Array(n))
        swiglu?.(gate, up, dy, outs[0], outs[1])
        glu?.forward(gate, up, outs[2] as Float32Array, o)
        glu?.backward(gate, up, dy, outs[3], outs[4], o)
        return outs
      }
      const [wider, narrower] = vectorIsas.map(run) as [Array<Float32Array>, Array<Float32Array>]
      wider.forEach((out, k) => expectSame(`output ${k}`, narrower[k] as Float32Array, Float64Array.from(out)))
    }),
    { numRuns: 40 },
  )
})

describe("row kernel argument errors", () => {
  const src = new Float32Array(12)
  test("gather / scatter: index out of range names the index and the bound; nothing written", () => {
    const out = new Float32Array(9).fill(5)
    expect(() => Cpu.gatherRows(src, Int32Array.of(0, 4, 1), out, 3)).toThrow(new RangeError("gatherRows: index[1] = 4 is out of range [0, 4) (rows of src)"))
    expect(() => Cpu.gatherRows(src, Int32Array.of(0, 1, -1), out, 3)).toThrow(new RangeError("gatherRows: index[2] = -1 is out of range [0, 4) (rows of src)"))
    expect(() => Cpu.scatterAddRows(new Float32Array(6), Int32Array.of(2, 3), out, 3)).toThrow(new RangeError("scatterAddRows: index[1] = 3 is out of range [0, 3) (rows of out)"))
    expect(Array.from(out)).toEqual(new Array(9).fill(5))
  })

  test("types, lengths, overlap", () => {
    const loose = Cpu.gatherRows as unknown as (...args: Array<unknown>) => void
    expect(() => loose(src, new Uint32Array(2), new Float32Array(6), 3)).toThrow(new TypeError("gatherRows: index must be a Int32Array, got Uint32Array"))
    expect(() => loose(new Float64Array(12), new Int32Array(2), new Float32Array(6), 3)).toThrow(new TypeError("gatherRows: src must be a Float32Array, got Float64Array"))
    expect(() => Cpu.gatherRows(src, new Int32Array(2), new Float32Array(5), 3)).toThrow(new RangeError("gatherRows: out has 5 elements, expected index.length * cols = 6"))
    expect(() => Cpu.gatherRows(new Float32Array(10), new Int32Array(2), new Float32Array(6), 3)).toThrow(
      new RangeError("gatherRows: src has 10 elements, not a whole number of rows of 3"),
    )
    expect(() => Cpu.gatherRows(src, new Int32Array(2), src.subarray(6), 3)).toThrow(new TypeError("gatherRows: out and src must not overlap in memory"))
    expect(() => Cpu.softmaxRows(src, new Float32Array(12), 5, 3)).toThrow(new RangeError("softmaxRows: x has 12 elements, expected rows * cols = 15"))
    expect(() => Cpu.softmaxRows(src.subarray(0, 6), src.subarray(3, 9), 2, 3)).toThrow(new TypeError("softmaxRows: out and x overlap in memory but are not the same view"))
    expect(() => Cpu.rmsnormRows(src, new Float32Array(4), new Float32Array(12), new Float64Array(3), 3, 4, 1e-6)).not.toThrow()
    expect(() => Cpu.rmsnormRows(src, new Float32Array(3), new Float32Array(12), new Float64Array(3), 3, 4, 1e-6)).toThrow(
      new RangeError("rmsnormRows: weight has 3 elements, expected cols = 4"),
    )
    expect(() => Cpu.rmsnormRows(src, new Float32Array(4), new Float32Array(12), new Int32Array(3) as unknown as Float64Array, 3, 4, 1e-6)).toThrow(
      new TypeError("rmsnormRows: rstd must be a Float32Array or Float64Array, got Int32Array"),
    )
    expect(() => Cpu.swiglu(src, new Float32Array(11), new Float32Array(12))).toThrow(new RangeError("swiglu: up has 11 elements, expected gate.length = 12"))
    expect(() => Cpu.swiglu(src, new Float32Array(12), src.subarray(1))).toThrow(RangeError)
  })
})
