// Properties of the native matmul (src/native/Cpu.ts) against the TypeScript reference run in
// float64 on the same inputs, on every ISA with 1 and 2 threads: error within 1e-5 of
// sum_k |a||b| (+ |out| when accumulating), views in guarded plain / shared buffers, batch strides
// including 0, shapes crossing the register tiles and cache blocks; async equals sync bit for
// bit; bad arguments throw TypeError / RangeError and leave out untouched.
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import { reference } from "../../src/tensor/kernels/Reference.js"
import {
  type MatmulShape,
  type Placement,
  configs,
  expectClose,
  extent,
  matmulShape,
  expectSame,
  guardsIntact,
  pin,
  place32,
  placement,
  random,
  stride,
  unpin,
  values,
  wide,
} from "./tensorCases.js"

type Shape = MatmulShape
const shape = matmulShape

interface Built {
  readonly args: Cpu.MatmulArgs
  readonly out0: Float64Array
}

const build = (s: Shape, at: { readonly a: Placement; readonly b: Placement; readonly out: Placement }): Built => {
  const rng = random(s.seed)
  const strideA = stride(s.m * s.k, s.padA)
  const strideB = stride(s.k * s.n, s.padB)
  const a = place32(values(rng, extent(s.batch, s.m * s.k, strideA)), at.a)
  const b = place32(values(rng, extent(s.batch, s.k * s.n, strideB)), at.b)
  // Without accumulate out starts as NaN: a kernel that reads it would poison the result.
  const out0 = s.accumulate ? values(rng, s.batch * s.m * s.n) : new Float64Array(s.batch * s.m * s.n).fill(Number.NaN)
  const out = place32(out0, at.out)
  return { args: { ...s, a, b, out, strideA, strideB }, out0 }
}

// The float64 reference result and the error scale sum_k |a||b| (+ |out0|).
const expected = (p: Cpu.MatmulArgs, out0: Float64Array): { readonly want: Float64Array; readonly bound: Float64Array } => {
  const want = p.accumulate ? Float64Array.from(out0) : new Float64Array(out0.length)
  reference.matmul({ ...p, a: wide(p.a), b: wide(p.b), out: want })
  const bound = p.accumulate ? out0.map(Math.abs) : new Float64Array(out0.length)
  reference.matmul({ ...p, a: wide(p.a).map(Math.abs), b: wide(p.b).map(Math.abs), out: bound })
  return { want, bound }
}

const check = (built: Built): void => {
  const p = built.args
  const { want, bound } = expected(p, built.out0)
  Cpu.matmul(p)
  expectClose("out", p.out, want, 1e-5, bound, 1e-30)
  if (!guardsIntact(p.a) || !guardsIntact(p.b) || !guardsIntact(p.out)) throw new Error("a guard element changed")
}

const places = fc.record({ a: placement, b: placement, out: placement })

// Shapes that cross the cache blocks (k > 512 on AVX-512, 256 on AVX2; m > 6 * 48, n > 4096)
// and the 2^20-MAC threshold above which the product is split across threads.
const fixed: ReadonlyArray<readonly [number, number, number, number]> = [
  [1, 3, 5, 600],
  [1, 400, 3, 9],
  [1, 2, 4200, 3],
  [1, 130, 129, 70],
  [3, 100, 90, 60],
  [2, 7, 300, 520],
]

const plain = { shared: false, before: 0, after: 0 }

afterAll(unpin)

describe.each(configs)("matmul on %s, %d thread(s)", (isa, threads) => {
  test("random shapes, transposes, strides, accumulate, views: within 1e-5 of sum |a||b|", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(shape(40, 70, 40), places, (s, at) => check(build(s, at))),
      { numRuns: 60 },
    )
  })

  test("shapes crossing the cache blocks and the threading threshold", () => {
    pin(isa, threads)
    let seed = 1
    for (const [batch, m, n, k] of fixed) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const s: Shape = { batch, m, n, k, transA, transB, padA: batch > 2 ? 1 : 0, padB: batch === 2 ? -1 : 0, accumulate: seed % 2 === 0, seed: seed++ }
          check(build(s, { a: plain, b: { shared: true, before: 3, after: 1 }, out: { shared: false, before: 5, after: 2 } }))
        }
      }
    }
  })

  /** The product with B stored [n, k] (transB) equals it with B transposed beforehand, bit for bit. */
  const sameWithBTransposed = (c: { m: number; n: number; k: number; transA: boolean; accumulate: boolean; seed: number }): void => {
    const rng = random(c.seed)
    const a = Float32Array.from(values(rng, c.m * c.k))
    const bt = Float32Array.from(values(rng, c.n * c.k)) // [n, k]
    const b = new Float32Array(c.k * c.n) // [k, n]
    for (let j = 0; j < c.n; j++) for (let p = 0; p < c.k; p++) b[p * c.n + j] = bt[j * c.k + p] as number
    const start = Float32Array.from(values(rng, c.m * c.n))
    const run = (transB: boolean) => {
      const out = Float32Array.from(start)
      Cpu.matmul({ ...c, a, b: transB ? bt : b, out, batch: 1, transB, strideA: 0, strideB: 0 })
      return out
    }
    expect(run(true)).toEqual(run(false))
  }

  test("transB equals the product with B transposed beforehand, bit for bit (packing only moves bytes)", () => {
    pin(isa, threads)
    // n and k past 64 and 16 with remainders: whole 16 x 16 blocks, partial groups and k tails.
    const sizes = fc.record({ m: fc.integer({ min: 1, max: 20 }), n: fc.integer({ min: 1, max: 150 }), k: fc.integer({ min: 1, max: 300 }), seed: fc.integer() })
    fc.assert(
      fc.property(sizes, (s) => sameWithBTransposed({ ...s, transA: false, accumulate: false })),
      { numRuns: 40 },
    )
  })

  test("14 to 16 rows, or up to 16 rows of at most 32 columns, with a transposed B (read in place on AVX-512) equal the product with B transposed beforehand, bit for bit, across k blocks", () => {
    pin(isa, threads)
    // k past 512 (the AVX-512 k block): partial sums of each block added to out as the panels add them.
    const sizes = fc
      .oneof(
        fc.record({ m: fc.integer({ min: 14, max: 16 }), n: fc.integer({ min: 1, max: 200 }) }),
        fc.record({ m: fc.integer({ min: 1, max: 16 }), n: fc.integer({ min: 1, max: 32 }) }),
      )
      .chain(({ m, n }) =>
        fc.record({
          m: fc.constant(m),
          n: fc.constant(n),
          k: fc.integer({ min: 1, max: 1100 }),
          transA: fc.boolean(),
          accumulate: fc.boolean(),
          seed: fc.integer(),
        }),
      )
    fc.assert(fc.property(sizes, sameWithBTransposed), { numRuns: 40 })
  })

  test("a row of out does not depend on m: up to 32 rows (B read in place) equal the same rows of a taller product (B packed), bit for bit", () => {
    pin(isa, threads)
    // The taller product repeats the small one's rows of A past 32 rows, so its rows take the
    // panels; every element is the same chain over the same k blocks either way. n k >= 512:
    // smaller products take matmul_ref, another rounding (matmul.h).
    const sizes = fc.record({
      m: fc.integer({ min: 1, max: 32 }),
      n: fc.integer({ min: 32, max: 150 }),
      k: fc.integer({ min: 16, max: 600 }),
      transA: fc.boolean(),
      transB: fc.boolean(),
      accumulate: fc.boolean(),
      seed: fc.integer(),
    })
    fc.assert(
      fc.property(sizes, ({ m, n, k, transA, transB, accumulate, seed }) => {
        const rng = random(seed)
        const tall = 33 + m
        const aRows = Array.from({ length: tall }, (_, i) => (i < m ? Float32Array.from(values(rng, k)) : undefined))
        const rowOf = (i: number) => aRows[i % m] as Float32Array
        const layA = (rows: number) => {
          const a = new Float32Array(rows * k)
          for (let i = 0; i < rows; i++) for (let p = 0; p < k; p++) a[transA ? p * rows + i : i * k + p] = rowOf(i)[p] as number
          return a
        }
        const b = Float32Array.from(values(rng, k * n))
        const start = Float32Array.from(values(rng, m * n))
        const run = (rows: number) => {
          const out = new Float32Array(rows * n)
          for (let i = 0; i < rows; i++) out.set(start.subarray((i % m) * n, ((i % m) + 1) * n), i * n)
          Cpu.matmul({ a: layA(rows), b, out, batch: 1, m: rows, n, k, transA, transB, strideA: 0, strideB: 0, accumulate })
          return out
        }
        expect(run(m)).toEqual(run(tall).subarray(0, m * n))
      }),
      { numRuns: 40 },
    )
  })

  test("matmulAsync equals matmul bit for bit", async () => {
    pin(isa, threads)
    await fc.assert(
      fc.asyncProperty(shape(90, 90, 90), places, async (s, at) => {
        const sync = build(s, at)
        const async = build(s, at)
        Cpu.matmul(sync.args)
        await Cpu.matmulAsync(async.args)
        expectSame("out", async.args.out, sync.args.out)
      }),
      { numRuns: 25 },
    )
  })
})

describe("concurrent calls", () => {
  test("many matmulAsync in flight with sync calls in between all give the sync bits", async () => {
    const shapes: ReadonlyArray<Shape> = Array.from({ length: 10 }, (_, i) => ({
      batch: 1 + (i % 2),
      m: 60 + 13 * i,
      n: 130 - 7 * i,
      k: 90 + i,
      transA: i % 3 === 0,
      transB: i % 2 === 0,
      padA: 0,
      padB: 0,
      accumulate: i % 4 === 0,
      seed: 100 + i,
    }))
    const wants = shapes.map((s) => {
      const b = build(s, { a: plain, b: plain, out: plain })
      Cpu.matmul(b.args)
      return b.args.out
    })
    const runs = shapes.map((s) => build(s, { a: plain, b: plain, out: plain }))
    const pending = runs.map((r, i) => {
      const promise = Cpu.matmulAsync(r.args)
      // A sync product on the JS thread while async ones run on libuv's pool.
      const side = build(shapes[(i + 3) % shapes.length] as Shape, { a: plain, b: plain, out: plain })
      Cpu.matmul(side.args)
      expectSame("side", side.args.out, wants[(i + 3) % shapes.length] as Float32Array)
      return promise
    })
    await Promise.all(pending)
    runs.forEach((r, i) => expectSame(`run ${i}`, r.args.out, wants[i] as Float32Array))
  })
})

describe("matmul results do not depend on the thread count", () => {
  test("1 and 2 threads give the same bits", () => {
    fc.assert(
      fc.property(shape(160, 160, 120), (s) => {
        const one = build(s, { a: plain, b: plain, out: plain })
        const two = build(s, { a: plain, b: plain, out: plain })
        Cpu.setThreads(1)
        Cpu.matmul(one.args)
        Cpu.setThreads(2)
        Cpu.matmul(two.args)
        expectSame("out", two.args.out, one.args.out)
      }),
      { numRuns: 30 },
    )
  })
})

describe("matmul argument errors", () => {
  const a = new Float32Array(6)
  const b = new Float32Array(12)
  const good: Cpu.MatmulArgs = { a, b, out: new Float32Array(8), batch: 1, m: 2, n: 4, k: 3, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false }
  const cases: ReadonlyArray<readonly [string, Partial<Record<keyof Cpu.MatmulArgs, unknown>>, ErrorConstructor, string]> = [
    ["a float64", { a: new Float64Array(6) }, TypeError, "matmul: a must be a Float32Array, got Float64Array"],
    ["b an Array", { b: [1, 2] }, TypeError, "matmul: b must be a Float32Array, got Array"],
    ["m a string", { m: "2" }, TypeError, "matmul: m must be a number, got string"],
    ["m negative", { m: -1 }, RangeError, "matmul: m must be an integer in [0, 9007199254740991], got -1"],
    ["k fractional", { k: 1.5 }, RangeError, "matmul: k must be an integer in [0, 9007199254740991], got 1.5"],
    ["n NaN", { n: Number.NaN }, RangeError, "matmul: n must be an integer in [0, 9007199254740991], got NaN"],
    ["transA a number", { transA: 1 }, TypeError, "matmul: transA must be a boolean, got number"],
    ["out too short", { out: new Float32Array(7) }, RangeError, "matmul: out has 7 elements, expected batch * m * n = 8"],
    ["a too short", { k: 4, b: new Float32Array(16) }, RangeError, "matmul: a has 6 elements, needs (batch - 1) * strideA + m * k = 8"],
    ["b too short for the batch", { batch: 2, strideB: 12, out: new Float32Array(16) }, RangeError, "matmul: b has 12 elements, needs (batch - 1) * strideB + k * n = 24"],
    ["dims overflow", { m: 2 ** 40, n: 2 ** 40, out: new Float32Array(0) }, RangeError, "matmul: m * n is too large"],
  ]
  test.each(cases)("%s", (_, change, ctor, message) => {
    const out = new Float32Array(8).fill(7)
    const args = { ...good, out, ...change } as Cpu.MatmulArgs
    expect(() => Cpu.matmul(args)).toThrow(new ctor(message))
    expect(() => Cpu.matmulAsync(args)).toThrow(new ctor(message.replace("matmul:", "matmulAsync:")))
    expect(Array.from(out)).toEqual(new Array(8).fill(7))
  })

  test("out overlapping a; an empty out next to a is fine", () => {
    const shared = new Float32Array(14)
    const args = { ...good, a: shared.subarray(0, 6), out: shared.subarray(4, 12) }
    expect(() => Cpu.matmul(args)).toThrow(new TypeError("matmul: out and a must not overlap in memory"))
    expect(() => Cpu.matmul({ ...good, out: a.subarray(0, 0), m: 0 })).not.toThrow()
  })
})
