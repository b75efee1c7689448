// The native element-wise kernels (native/CpuElementwise) give the same bits as the TypeScript
// loops they replace, on every ISA path and thread split: add, sub, mul, div with equal shapes,
// a repeating suffix and one value per row; a scale by any double; the row sums and suffix sums
// of the broadcasts' backward. Values span many magnitudes and include zeros of both signs,
// infinities, NaN and subnormals; lengths straddle the native threshold and the thread pool's.
// Then the public ops (mul, add, ..., and the gradients through unbroadcast) on such shapes
// equal the loop formulas.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import { BinaryOp, BroadcastKind, elementwiseKernels } from "../../src/native/CpuElementwise.js"
import { nativeFrom } from "../../src/tensor/kernels/AddInto.js"
import { add, div, mul, scale, sub } from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const kernels = elementwiseKernels()
const isas =
  kernels === undefined
    ? []
    : (["scalar", "avx2", "avx512"] as const).filter((isa) => Cpu.cpuFeatures()[isa === "scalar" ? "fma" : isa === "avx2" ? "avx2" : "avx512f"] || isa === "scalar")

type DT = "float32" | "float64"
const specials = [0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 1e-40, -3e-39, 5e-324]

const fill = (dtype: DT, n: number, seed: number) => {
  let x = seed >>> 0 || 1
  const out = dtype === "float32" ? new Float32Array(n) : new Float64Array(n)
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x % 97 === 0 ? (specials[x % specials.length] as number) : (x / 2 ** 32 - 0.5) * 2 ** ((x % 41) - 20)
  }
  return out
}

const ops = [(x: number, y: number) => x + y, (x: number, y: number) => x - y, (x: number, y: number) => x * y, (x: number, y: number) => x / y]

const caseArb = fc.record({
  dtype: fc.constantFrom<DT>("float32", "float64"),
  op: fc.constantFrom(BinaryOp.add, BinaryOp.sub, BinaryOp.mul, BinaryOp.div),
  kind: fc.constantFrom("same" as const, "suffix" as const, "rows" as const),
  rows: fc.integer({ min: 0, max: 70 }),
  width: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1000, max: 3000 })),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  s: fc.double({ noNaN: false }),
  isa: fc.nat(),
})

const bOf = (c: { kind: "same" | "suffix" | "rows"; rows: number; width: number }) => (c.kind === "same" ? c.rows * c.width : c.kind === "suffix" ? c.width : c.rows)

const same = (x: Float32Array | Float64Array, y: Float32Array | Float64Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]))

describe.skipIf(kernels === undefined)("native element-wise kernels", () => {
  test("binary ops and scale equal the loops bit for bit on every ISA", () => {
    const before = Cpu.activeIsa()
    try {
      fc.assert(
        fc.property(caseArb, (c) => {
          Cpu.setIsa(isas[c.isa % isas.length] ?? "scalar")
          const n = c.rows * c.width
          const a = fill(c.dtype, n, c.seed)
          const b = fill(c.dtype, bOf(c), c.seed * 7 + 1)
          const out = c.dtype === "float32" ? new Float32Array(n) : new Float64Array(n)
          kernels?.binary(c.op, BroadcastKind[c.kind], a, b, out, c.kind === "same" ? 0 : c.width)
          const want = out.map((_, i) =>
            (ops[c.op] as (x: number, y: number) => number)(a[i] as number, b[c.kind === "same" ? i : c.kind === "suffix" ? i % c.width : Math.floor(i / c.width)] as number),
          )
          expect(same(out, want)).toBe(true)
          kernels?.scale(a, c.s, out)
          expect(
            same(
              out,
              a.map((v) => v * c.s),
            ),
          ).toBe(true)
        }),
        { numRuns: 300 },
      )
    } finally {
      Cpu.setIsa(before)
    }
  })

  test("row sums and suffix sums equal the loops bit for bit", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        Cpu.setIsa(isas[c.isa % isas.length] ?? "scalar")
        const g = fill(c.dtype, c.rows * c.width, c.seed)
        const rowSums = c.dtype === "float32" ? new Float32Array(c.rows) : new Float64Array(c.rows)
        kernels?.sumRows(g, rowSums, c.width)
        const wantRows = rowSums.map((_, r) => {
          let acc = 0
          for (let j = 0; j < c.width; j++) acc += g[r * c.width + j] as number
          return acc
        })
        expect(same(rowSums, wantRows)).toBe(true)
        const suffix = c.dtype === "float32" ? new Float32Array(c.width) : new Float64Array(c.width)
        kernels?.sumSuffix(g, suffix, c.width)
        const wantSuffix = suffix.map(() => 0)
        for (let i = 0; i < g.length; i++) wantSuffix[i % c.width] = (wantSuffix[i % c.width] as number) + (g[i] as number)
        expect(same(suffix, wantSuffix)).toBe(true)
      }),
      { numRuns: 200 },
    )
    Cpu.setIsa("auto")
  })

  test("large calls split over the thread pool give the same bits", () => {
    const n = 600_000
    const a = fill("float32", n, 11)
    const b = fill("float32", n / 1000, 12)
    const out = new Float32Array(n)
    kernels?.binary(BinaryOp.mul, BroadcastKind.rows, a, b, out, 1000)
    expect(
      same(
        out,
        out.map((_, i) => (a[i] as number) * (b[Math.floor(i / 1000)] as number)),
      ),
    ).toBe(true)
    const sums = new Float32Array(1000)
    kernels?.sumSuffix(a, sums, 1000)
    const want = new Float32Array(1000)
    for (let i = 0; i < n; i++) want[i % 1000] = (want[i % 1000] as number) + (a[i] as number)
    expect(same(sums, want)).toBe(true)
  })

  test("the public ops and their gradients equal the loop formulas above the native threshold", () => {
    fc.assert(
      fc.property(fc.constantFrom<DT>("float32", "float64"), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 2 ** 30 }), (dtype, rows, seed) => {
        const width = Math.ceil(nativeFrom / rows) + 5
        const x = Tensor.fromStorage(
          fill(dtype, rows * width, seed).map((v) => (Number.isFinite(v) ? v : 1)),
          [rows, width],
        )
        const perRow = Tensor.fromStorage(
          fill(dtype, rows, seed + 1).map((v) => (Number.isFinite(v) ? v : 2)),
          [rows, 1],
        )
        const bias = Tensor.fromStorage(
          fill(dtype, width, seed + 2).map((v) => (Number.isFinite(v) ? v : 3)),
          [width],
        )
        const at = (t: Tensor.Tensor, i: number) => t.data[i] as number
        expect(
          same(
            mul(x, perRow).data,
            x.data.map((v, i) => v * at(perRow, Math.floor(i / width))),
          ),
        ).toBe(true)
        expect(
          same(
            add(x, bias).data,
            x.data.map((v, i) => v + at(bias, i % width)),
          ),
        ).toBe(true)
        expect(
          same(
            sub(x, x).data,
            x.data.map((v) => v - v),
          ),
        ).toBe(true)
        expect(
          same(
            div(x, bias).data,
            x.data.map((v, i) => v / at(bias, i % width)),
          ),
        ).toBe(true)
        expect(
          same(
            scale(x, 1 / 3).data,
            x.data.map((v) => v * (1 / 3)),
          ),
        ).toBe(true)
        // Gradients: d(sum(x * perRow + bias))/d perRow = row sums of x; d/d bias = rows.
        const tape = Tape.make()
        const [px, pr, pb] = [tape.parameter(x), tape.parameter(perRow), tape.parameter(bias)]
        tape.backward(Reduce.sumAll(add(mul(px, pr), pb)))
        const rowSum = (r: number) => {
          let acc = 0
          for (let j = 0; j < width; j++) acc += at(x, r * width + j)
          return acc
        }
        expect(
          same(
            (pr.grad as Tensor.Tensor).data,
            perRow.data.map((_, r) => rowSum(r)),
          ),
        ).toBe(true)
        expect(
          same(
            (pb.grad as Tensor.Tensor).data,
            bias.data.map(() => rows),
          ),
        ).toBe(true)
      }),
      { numRuns: 40 },
    )
  })
})
