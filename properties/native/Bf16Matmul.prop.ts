// The bf16 GEMM (cuda/src/kernels/bf16_matmul.h: AVX512-BF16, VDPBF16PS) and its dispatch
// (src/tensor/kernels/Bf16Matmul.ts).
//
// Tolerance. Inputs are bf16 values, so every product a * b is exact in float32 (8 + 8
// significant bits) and the only error is the float32 summation. An out element of the bf16
// kernel is a sum of k products with at most k + ceil(k / 512) + 1 rounded additions (the
// pairs, one add per k block of 512, one for `accumulate`), so by the usual bound on
// recursive summation |got - exact| <= (k + ceil(k / 512) + 2) * 2^-24 * (sum_k |a||b| + |out0|),
// plus 2^-126 per step for VDPBF16PS's flush of denormal sums (nil on these inputs). The fp32
// kernel obeys the same bound with blocks of 256, so the two kernels differ by at most the sum
// of both bounds. The reference is the float64 TypeScript matmul on the same values.
//
// The kernel: random shapes biased to the edges (0, 1, odd k, sizes around 16 / 32 / the 6 x 64
// tile), transposes, batches with strides including 0, accumulate, views in guarded plain and
// shared buffers; fixed shapes crossing the k block (512), the row and column blocks and the
// threading threshold; 1 and 2 threads bit-identical, async bit-identical to sync; inputs that
// are not bf16 values are rounded to nearest even on packing (equal to the kernel on their
// rounding). The dispatch: a bf16 tape's forward matmul / groupedMatmul / matmulEffect (sync and
// async sizes) runs the bf16 kernel (the counter moves, and the output is the kernel's, rounded)
// and their backward does not; an fp32 tape and a fullPrecision region never do (bit-identical
// to a matmul without a tape); setMode("off") (the forced fallback, as PLEAT_BF16_MATMUL=off)
// runs the float32 kernel, and PLEAT_BF16_MATMUL=off in the environment of a child process does
// the same from its start. Skipped where the CPU lacks AVX512-BF16, which must agree with
// /proc/cpuinfo.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuBf16 from "../../src/native/CpuBf16.js"
import * as Bf16Matmul from "../../src/tensor/kernels/Bf16Matmul.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import { reference } from "../../src/tensor/kernels/Reference.js"
import { toBf16 } from "../../src/tensor/ops/Bf16.js"
import { mul } from "../../src/tensor/ops/Elementwise.js"
import { groupedMatmul } from "../../src/tensor/ops/GroupedMatmul.js"
import { matmul, matmulEffect } from "../../src/tensor/ops/Matmul.js"
import { sumAll } from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { type MatmulShape, type Placement, expectSame, extent, guardsIntact, matmulShape, place32, placement, random, stride, unpin, wide } from "./tensorCases.js"

const kernel = CpuBf16.bf16MatmulKernel()
const hasBf16 = existsSync("/proc/cpuinfo") ? /\bavx512_bf16\b/.test(readFileSync("/proc/cpuinfo", "utf8")) : undefined

const U = 2 ** -24

/** A matmul case with inputs scaled by 2^exponent (other binades than [-1, 1)). */
type Shape = MatmulShape & { readonly exponent: number }

const shape = (maxM: number, maxN: number, maxK: number): fc.Arbitrary<Shape> =>
  fc.tuple(matmulShape(maxM, maxN, maxK), fc.integer({ min: -20, max: 20 })).map(([s, exponent]) => ({ ...s, exponent }))

/** n bf16 values (uniform in [-1, 1) times 2^exponent, rounded to bf16), a fifth of them zero. */
const bf16Values = (rng: (lo?: number, hi?: number) => number, n: number, exponent: number): Float64Array => {
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = rng(0, 1) < 0.2 ? 0 : Bf16Round.roundValue(rng() * 2 ** exponent)
  return out
}

interface Built {
  readonly args: Cpu.MatmulArgs
  readonly out0: Float64Array
}

const build = (s: Shape, at: { readonly a: Placement; readonly b: Placement; readonly out: Placement }): Built => {
  const rng = random(s.seed)
  const strideA = stride(s.m * s.k, s.padA)
  const strideB = stride(s.k * s.n, s.padB)
  const a = place32(bf16Values(rng, extent(s.batch, s.m * s.k, strideA), s.exponent), at.a)
  const b = place32(bf16Values(rng, extent(s.batch, s.k * s.n, strideB), -s.exponent), at.b)
  // Without accumulate out starts as NaN: a kernel that reads it would poison the result.
  const out0 = s.accumulate ? Float64Array.from(bf16Values(rng, s.batch * s.m * s.n, 0)) : new Float64Array(s.batch * s.m * s.n).fill(Number.NaN)
  return { args: { ...s, a, b, out: place32(out0, at.out), strideA, strideB }, out0 }
}

/** The float64 reference and the error scale sum_k |a||b| (+ |out0|). */
const expected = (p: Cpu.MatmulArgs, out0: Float64Array): { readonly want: Float64Array; readonly scale: Float64Array } => {
  const want = p.accumulate ? Float64Array.from(out0) : new Float64Array(out0.length)
  reference.matmul({ ...p, a: wide(p.a), b: wide(p.b), out: want })
  const scale = p.accumulate ? out0.map(Math.abs) : new Float64Array(out0.length)
  reference.matmul({ ...p, a: wide(p.a).map(Math.abs), b: wide(p.b).map(Math.abs), out: scale })
  return { want, scale }
}

/** The relative bound of the file header for a kernel summing in k blocks of `block`. */
const relBound = (k: number, block: number): number => (k + Math.ceil(k / block) + 2) * U

const expectWithin = (what: string, got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>, rel: number, abs: number): void => {
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as number
    const w = want[i] as number
    const limit = rel * (scale[i] as number) + abs
    if (!(Math.abs(g - w) <= limit)) throw new Error(`${what}[${i}]: got ${g}, want ${w} (|diff| ${Math.abs(g - w)} > ${limit})`)
  }
}

/** Another out holding the starting values, for a second run on the same inputs. */
const fresh = (out0: Float64Array): Float32Array => place32(out0, { shared: false, before: 2, after: 2 })

/** The bf16 kernel against the float64 reference and against the fp32 kernel. */
const check = (built: Built, threads: number): void => {
  if (kernel === undefined) throw new Error("no bf16 kernel")
  const p = built.args
  const { want, scale } = expected(p, built.out0)
  Cpu.setThreads(threads)
  kernel.sync(p)
  if (!guardsIntact(p.a) || !guardsIntact(p.b) || !guardsIntact(p.out)) throw new Error("a guard element changed")
  const abs = (p.k + 2) * 2 ** -126
  expectWithin("bf16 vs float64", p.out, want, scale, relBound(p.k, 512), abs)
  const fp32 = fresh(built.out0)
  Cpu.matmul({ ...p, out: fp32 })
  expectWithin("bf16 vs fp32 kernel", p.out, fp32, scale, relBound(p.k, 512) + relBound(p.k, 256), abs)
}

const places = fc.record({ a: placement, b: placement, out: placement })
const plain = { shared: false, before: 0, after: 0 }

// Crossing the k block (512 values = 256 pairs, odd k included), the row block (6 * 48), the
// column block (4096) and the threading threshold (2^21 multiply-adds).
const fixed: ReadonlyArray<readonly [number, number, number, number]> = [
  [1, 3, 5, 1031],
  [1, 400, 3, 9],
  [1, 2, 4200, 3],
  [1, 130, 129, 1025],
  [3, 100, 90, 61],
  [2, 7, 300, 520],
]

afterAll(() => {
  unpin()
  Bf16Matmul.setMode("auto")
})

test("the kernel is offered exactly when the CPU has AVX512-BF16 (/proc/cpuinfo)", () => {
  if (hasBf16 === undefined) return
  expect(kernel !== undefined).toBe(hasBf16)
  expect(Bf16Matmul.available()).toBe(hasBf16)
})

describe.skipIf(kernel === undefined)("bf16 GEMM", () => {
  test.each([1, 2])("random shapes, transposes, batches, strides, accumulate, views (%d thread(s)): within the fp32-summation bound", (threads) => {
    fc.assert(
      fc.property(shape(40, 70, 70), places, (s, at) => check(build(s, at), threads)),
      { numRuns: 80 },
    )
  })

  test("shapes crossing the cache blocks and the threading threshold, 1 and 2 threads bit-identical", () => {
    let seed = 1
    for (const [batch, m, n, k] of fixed) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const s: Shape = {
            batch,
            m,
            n,
            k,
            transA,
            transB,
            padA: batch > 2 ? 1 : 0,
            padB: batch === 2 ? -1 : 0,
            accumulate: seed % 2 === 0,
            exponent: (seed % 5) - 2,
            seed: seed++,
          }
          const built = build(s, { a: plain, b: { shared: true, before: 3, after: 1 }, out: { shared: false, before: 5, after: 2 } })
          check(built, 2)
          const one = fresh(built.out0)
          Cpu.setThreads(1)
          kernel?.sync({ ...built.args, out: one })
          expectSame("1 thread vs 2", one, built.args.out)
        }
      }
    }
  })

  test("async equals sync bit for bit", async () => {
    Cpu.setThreads(2)
    await fc.assert(
      fc.asyncProperty(shape(90, 90, 90), async (s) => {
        const built = build(s, { a: plain, b: plain, out: plain })
        const other = fresh(built.out0)
        kernel?.sync(built.args)
        await kernel?.async({ ...built.args, out: other })
        expectSame("async vs sync", other, built.args.out)
      }),
      { numRuns: 30 },
    )
  })

  test("inputs that are not bf16 values are rounded to nearest even when packed", () => {
    fc.assert(
      fc.property(shape(20, 40, 40), (s) => {
        const rng = random(s.seed ^ 0x5a5a)
        const p = build({ ...s, accumulate: false }, { a: plain, b: plain, out: plain }).args
        const a = Float32Array.from(p.a, (v) => v + (rng() * Math.abs(v)) / 300)
        const b = Float32Array.from(p.b, (v) => v + (rng() * Math.abs(v)) / 300)
        const raw = new Float32Array(p.out.length)
        const rounded = new Float32Array(p.out.length)
        kernel?.sync({ ...p, a, b, out: raw })
        const ra = new Float32Array(a.length)
        const rb = new Float32Array(b.length)
        Bf16Round.roundInto(a, ra)
        Bf16Round.roundInto(b, rb)
        kernel?.sync({ ...p, a: ra, b: rb, out: rounded })
        expectSame("raw vs rounded inputs", raw, rounded)
      }),
      { numRuns: 30 },
    )
  })
})

// ---- dispatch ----------------------------------------------------------------------------------

const randomTensor = (shape: ReadonlyArray<number>, seed: number): Tensor.Tensor => {
  const rng = random(seed)
  return Tensor.fromArray(
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng()),
    shape,
  )
}

const bits = (t: Tensor.Tensor): Uint32Array => new Uint32Array(Float32Array.from(t.data as Float32Array).buffer)

/** The kernel's output on the tensors' data, rounded to bf16 (what a bf16 tape stores). */
const viaKernel = (run: (p: Cpu.MatmulArgs) => void, a: Tensor.Tensor, b: Tensor.Tensor, m: number, n: number, k: number): Uint32Array => {
  const out = new Float32Array(m * n)
  run({ a: a.data as Float32Array, b: b.data as Float32Array, out, batch: 1, m, n, k, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false })
  Bf16Round.roundInto(out, out)
  return new Uint32Array(out.buffer)
}

describe.skipIf(kernel === undefined)("dispatch", () => {
  test("a bf16 tape's matmul runs the bf16 kernel forward and backward (the gradient rounded as it packs)", () => {
    Cpu.setThreads(2)
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), (seed, m, n, k) => {
        const tape = Tape.make({ precision: "bf16" })
        const leaf = tape.parameter(randomTensor([k, n], seed))
        const w = toBf16(leaf)
        const x = toBf16(randomTensor([m, k], seed + 1))
        const before = Bf16Matmul.calls()
        const h = matmul(x, w)
        expect(Bf16Matmul.calls()).toBe(before + 1)
        expect(bits(h)).toEqual(viaKernel((p) => kernel?.sync(p), x, w, m, n, k))
        const r = randomTensor([m, n], seed + 2)
        const loss = sumAll(mul(h, r))
        tape.backward(loss)
        // dW = x^T dh with dh = r: one more product, on the kernel, r rounded to bf16 as it packs.
        expect(Bf16Matmul.calls()).toBe(before + 2)
        const dw = new Float32Array(k * n)
        kernel?.sync({
          a: x.data as Float32Array,
          b: r.data as Float32Array,
          out: dw,
          batch: 1,
          m: k,
          n,
          k: m,
          transA: true,
          transB: false,
          strideA: 0,
          strideB: 0,
          accumulate: false,
        })
        expect(new Uint32Array(Float32Array.from(leaf.grad?.data as Float32Array).buffer)).toEqual(new Uint32Array(dw.buffer))
        const after = Bf16Matmul.calls()
        // A fullPrecision region keeps the float32 kernel.
        const fp = tape.fullPrecision(() => matmul(x, w))
        expect(Bf16Matmul.calls()).toBe(after)
        expect(bits(fp)).toEqual(bits(matmul(Tensor.detachCopy(x), Tensor.detachCopy(w))))
      }),
      { numRuns: 40 },
    )
  })

  test("an fp32 tape never runs it: bit-identical to a matmul without a tape", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const tape = Tape.make()
        const w = toBf16(tape.parameter(randomTensor([24, 17], seed)))
        const x = toBf16(randomTensor([9, 24], seed + 1))
        const before = Bf16Matmul.calls()
        const h = matmul(x, w)
        const g = groupedMatmul(x, Tensor.fromStorage(Float32Array.from([...(w.data as Float32Array), ...(w.data as Float32Array)]), [2, 24, 17]), [4, 5])
        tape.backward(sumAll(h))
        expect(Bf16Matmul.calls()).toBe(before)
        expect(bits(h)).toEqual(bits(matmul(Tensor.detachCopy(x), Tensor.detachCopy(w))))
        expect(Bf16Round.isExact(h.data as Float32Array) && Bf16Round.isExact(g.data as Float32Array)).toBe(false)
      }),
      { numRuns: 20 },
    )
  })

  test("a bf16 tape's groupedMatmul runs it once per non-empty segment", () => {
    const tape = Tape.make({ precision: "bf16" })
    const w = toBf16(tape.parameter(randomTensor([3, 20, 33], 5)))
    const x = toBf16(randomTensor([11, 20], 6))
    const before = Bf16Matmul.calls()
    const out = groupedMatmul(x, w, [4, 0, 7])
    expect(Bf16Matmul.calls()).toBe(before + 2)
    // Segment 2 (rows 4..10 against expert 2) is the kernel's product.
    const xs = Tensor.fromStorage((x.data as Float32Array).slice(4 * 20), [7, 20])
    const ws = Tensor.fromStorage((w.data as Float32Array).slice(2 * 20 * 33), [20, 33])
    expect(new Uint32Array((out.data as Float32Array).slice(4 * 33).buffer)).toEqual(viaKernel((p) => kernel?.sync(p), xs, ws, 7, 33, 20))
    tape.backward(sumAll(out))
    // Backward: the weight gradient of each non-empty segment on the kernel too.
    expect(Bf16Matmul.calls()).toBe(before + 4)
  })

  test("matmulEffect takes it on both its sync and async sizes", async () => {
    for (const size of [8, 256]) {
      const tape = Tape.make({ precision: "bf16" })
      const w = toBf16(tape.parameter(randomTensor([size, size], size)))
      const x = toBf16(randomTensor([size, size], size + 1))
      const before = Bf16Matmul.calls()
      const h = await Effect.runPromise(matmulEffect(x, w))
      expect(Bf16Matmul.calls()).toBe(before + 1)
      expect(bits(h)).toEqual(viaKernel((p) => kernel?.sync(p), x, w, size, size, size))
    }
  })

  test("with the float32 kernel (mode off) a bf16 product's backward rounds the gradient first: the same exact products", () => {
    const previous = Bf16Matmul.setMode("off")
    try {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 30 }), (seed, m, n, k) => {
          const tape = Tape.make({ precision: "bf16" })
          const leaf = tape.parameter(randomTensor([k, n], seed))
          const x = toBf16(randomTensor([m, k], seed + 1))
          const r = randomTensor([m, n], seed + 2)
          tape.backward(sumAll(mul(matmul(x, toBf16(leaf)), r)))
          const rounded = new Float32Array(m * n)
          Bf16Round.roundInto(r.data as Float32Array, rounded)
          const want = new Float32Array(k * n)
          Cpu.matmul({ a: x.data as Float32Array, b: rounded, out: want, batch: 1, m: k, n, k: m, transA: true, transB: false, strideA: 0, strideB: 0, accumulate: false })
          expect(bits(leaf.grad as Tensor.Tensor)).toEqual(new Uint32Array(want.buffer))
          // The rounding is real: r itself is not all bf16 values.
          expect(Bf16Round.isExact(r.data as Float32Array)).toBe(false)
        }),
        { numRuns: 30 },
      )
    } finally {
      Bf16Matmul.setMode(previous)
    }
  })

  test("setMode('off') (as PLEAT_BF16_MATMUL=off) forces the float32 kernel", () => {
    const previous = Bf16Matmul.setMode("off")
    try {
      const tape = Tape.make({ precision: "bf16" })
      const w = toBf16(tape.parameter(randomTensor([300, 70], 1)))
      const x = toBf16(randomTensor([50, 300], 2))
      const before = Bf16Matmul.calls()
      const h = matmul(x, w)
      groupedMatmul(x, Tensor.fromStorage(Float32Array.from(w.data as Float32Array), [1, 300, 70]), [50])
      expect(Bf16Matmul.calls()).toBe(before)
      expect(bits(h)).toEqual(viaKernel(Cpu.matmul, x, w, 50, 70, 300))
    } finally {
      Bf16Matmul.setMode(previous)
    }
  })

  test("PLEAT_BF16_MATMUL=off in a process's environment keeps its bf16 tapes on the float32 kernel", () => {
    const root = new URL("../../", import.meta.url).pathname
    const script = [
      `import * as Bf16Matmul from "${root}src/tensor/kernels/Bf16Matmul.ts"`,
      `import { toBf16 } from "${root}src/tensor/ops/Bf16.ts"`,
      `import { matmul } from "${root}src/tensor/ops/Matmul.ts"`,
      `import * as Tape from "${root}src/tensor/Tape.ts"`,
      `import * as Tensor from "${root}src/tensor/Tensor.ts"`,
      "const tape = Tape.make({ precision: 'bf16' })",
      "const w = toBf16(tape.parameter(Tensor.fromArray(Array.from({ length: 64 }, (_, i) => i / 7), [8, 8])))",
      "matmul(w, w)",
      "console.log(JSON.stringify({ available: Bf16Matmul.available(), calls: Bf16Matmul.calls() }))",
    ].join("\n")
    const run = (env: Record<string, string>) =>
      JSON.parse(execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { env: { ...process.env, ...env }, encoding: "utf8" }).trim())
    expect(run({ PLEAT_BF16_MATMUL: "off" })).toEqual({ available: true, calls: 0 })
    expect(run({ PLEAT_BF16_MATMUL: "auto" })).toEqual({ available: true, calls: 1 })
  })
})
