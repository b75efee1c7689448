// bf16 rounding and the bf16 tape.
//
// The conversion: the TypeScript rule on the bit pattern is round-to-nearest-even in value
// space (checked against the two bf16 neighbours of each float32, ties to the even mantissa,
// overflow to Inf, NaN kept), and the native kernel equals it bit for bit on random patterns
// weighted towards ties, subnormals, +-Inf, NaN and the overflow edge, on every path this
// machine has: the portable integer loop (forced by argument) and AVX512-BF16 (run when the
// CPU has it; this test asserts the detection agrees with /proc/cpuinfo).
//
// The tape: on a bf16 tape every non-scalar forward output outside `fullPrecision` is a bf16
// value (and would not be without the rounding: the same ops on an fp32 tape give non-bf16
// values), fullPrecision and scalar outputs are left alone, views never round the tensor they
// view, gradients are fp32 and reach the fp32 master leaf through the cast (products' backward
// taking the incoming gradient in bf16), a recomputed block
// gives the same gradients as a kept one (its first run and its replay both round), and an
// fp32 tape rounds nothing (bit-identical to computing without a tape).
import fc from "fast-check"
import { existsSync, readFileSync } from "node:fs"
import { describe, expect, test } from "vitest"
import * as CpuBf16 from "../../src/native/CpuBf16.js"
import type { Node } from "../../src/tensor/Tape.js"
import * as Recompute from "../../src/tensor/Recompute.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Bf16Matmul from "../../src/tensor/kernels/Bf16Matmul.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import { copyToBf16, toBf16 } from "../../src/tensor/ops/Bf16.js"
import { add, mul, scale } from "../../src/tensor/ops/Elementwise.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { sumAll } from "../../src/tensor/ops/Reduce.js"
import { reshape } from "../../src/tensor/ops/Shape.js"
import { softmax } from "../../src/tensor/ops/Softmax.js"

const u32 = (b: number) => b >>> 0
const signed = (negative: boolean, magnitude: number) => u32((negative ? 0x80000000 : 0) | magnitude)

/** float32 bit patterns, weighted towards the cases a rounding kernel gets wrong. */
const pattern = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  // exact ties (low half 0x8000), odd and even upper halves
  fc.integer({ min: 0, max: 0xffff }).map((hi) => u32((hi << 16) | 0x8000)),
  // one below and above a tie
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0x7fff, 0x8001)).map(([hi, lo]) => u32((hi << 16) | lo)),
  // subnormals, including ties among them
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 0x7fffff })).map(([s, m]) => signed(s, m)),
  fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 0x7f })).map(([s, m]) => signed(s, (m << 16) | 0x8000)),
  // NaN with any payload (quiet or signalling, payload only in the low half or not)
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 0x7fffff })).map(([s, m]) => signed(s, 0x7f800000 | m)),
  // the edges: +-Inf, +-0, the largest finite values (overflow to Inf), the smallest subnormal
  fc.constantFrom(0x7f800000, 0xff800000, 0, 0x80000000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f7f0000, 1, 0x80000001, 0x8000, 0x18000),
)

const isNaNBits = (b: number) => (b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0

const asFloat = (b: number): number => new Float32Array(Uint32Array.of(b).buffer)[0] as number

/** The bf16 neighbour of |x| away from zero, as an exact number (2^128 past the largest). */
const magnitudeOf = (b: number): number => {
  const m = b & 0x7fffffff
  if (m === 0x7f800000) return 2 ** 128
  return Math.abs(asFloat(m))
}

const bitsOf = (values: Float32Array) => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length))

const arrays = fc.array(pattern, { maxLength: 70 }).map((ps) => new Float32Array(Uint32Array.from(ps).buffer))

const hardware = CpuBf16.bf16Hardware()

describe("bf16 rounding", () => {
  test("the bit rule is round-to-nearest-even in value space, overflows to Inf and keeps NaN", () => {
    fc.assert(
      fc.property(pattern, (b) => {
        const r = Bf16Round.roundBits(b)
        if (isNaNBits(b)) {
          expect(isNaNBits(r)).toBe(true)
          expect(r & 0xffff).toBe(0)
          return
        }
        const lo = u32(b & 0xffff0000)
        if (lo === b) {
          expect(r).toBe(b)
          return
        }
        const hi = lo + 0x10000
        const x = Math.abs(asFloat(b))
        const below = magnitudeOf(lo)
        const above = magnitudeOf(hi)
        const dBelow = x - below
        const dAbove = above - x
        const expected = dBelow < dAbove ? lo : dAbove < dBelow ? hi : (lo & 0x10000) === 0 ? lo : hi
        expect(r.toString(16)).toBe(u32(expected).toString(16))
      }),
      { numRuns: 20_000 },
    )
    // Hand-checked: ties go to even, the tie past the largest finite bf16 overflows.
    expect(Bf16Round.roundValue(1 + 2 ** -8)).toBe(1)
    expect(Bf16Round.roundValue(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6)
    expect(Bf16Round.roundValue(3.4028234663852886e38)).toBe(Number.POSITIVE_INFINITY)
    expect(Object.is(Bf16Round.roundValue(-0), -0)).toBe(true)
    expect(Bf16Round.roundValue(2 ** -149)).toBe(0)
  })

  test("the native kernel is built and its CPU detection agrees with /proc/cpuinfo", () => {
    expect(Bf16Round.status().native).toBe(true)
    if (!existsSync("/proc/cpuinfo")) return
    const flags = new Set(
      readFileSync("/proc/cpuinfo", "utf8")
        .split("\n")
        .find((l) => l.startsWith("flags"))
        ?.split(/\s+/) ?? [],
    )
    expect(hardware).toBe(flags.has("avx512_bf16") && flags.has("avx512bw") && flags.has("avx512f"))
  })

  const paths: ReadonlyArray<CpuBf16.Bf16Path> = hardware ? ["portable", "avx512bf16"] : ["portable"]
  test.each(paths)("native %s path equals the TypeScript reference bit for bit, out of place and in place", (path) => {
    fc.assert(
      fc.property(arrays, fc.integer({ min: 0, max: 3 }), (src, offset) => {
        // An offset view, so the vector loop starts unaligned and ends in a masked tail.
        const padded = new Float32Array(src.length + offset)
        padded.set(src, offset)
        const view = padded.subarray(offset)
        const reference = new Float32Array(src.length)
        expect(Bf16Round.roundInto(src, reference, "typescript")).toBe("typescript")
        const out = new Float32Array(src.length)
        expect(Bf16Round.roundInto(view, out, path)).toBe(path)
        expect(bitsOf(out)).toEqual(bitsOf(reference))
        expect(Bf16Round.roundInto(view, view, path)).toBe(path)
        expect(bitsOf(view)).toEqual(bitsOf(reference))
      }),
      { numRuns: 3000 },
    )
  })

  test("auto takes AVX512-BF16 exactly when the CPU has it", () => {
    const x = new Float32Array([1.00390625, -2.5e-39, Number.NaN])
    expect(Bf16Round.roundInto(x, new Float32Array(3))).toBe(hardware ? "avx512bf16" : "portable")
    if (!hardware) expect(() => Bf16Round.roundInto(x, new Float32Array(3), "avx512bf16")).toThrow(/AVX512-BF16/)
  })
})

/** Random float32 values that are not bf16 values. */
const randomTensor = (shape: ReadonlyArray<number>, seed: number) => {
  let s = seed >>> 0 || 1
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32 - 0.5
  }
  return Tensor.fromArray(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next), shape)
}

/** Records every node of the tape with whether the tape rounded when it was recorded. */
const observe = (tape: Tape.Tape) => {
  const seen: Array<{ node: Node; rounded: boolean; exact: boolean }> = []
  const record = tape.record.bind(tape)
  tape.record = (node: Node) => {
    const data = node.output.data
    seen.push({ node, rounded: tape.roundsToBf16, exact: data instanceof Float32Array && Bf16Round.isExact(data) })
    record(node)
  }
  return seen
}

/** A small forward: a cast weight, matmuls, softmax, a view, a fp32 region, a scalar loss. */
const forward = (tape: Tape.Tape, master: Tensor.Tensor, x: Tensor.Tensor, castWeights: boolean) => {
  const leaf = tape.parameter(master)
  const w = castWeights ? toBf16(leaf) : leaf
  const h = matmul(x, w)
  const p = softmax(scale(h, 3))
  const viewed = reshape(p, [p.size])
  const routerLike = tape.fullPrecision(() => softmax(matmul(x, w)))
  const mixed = add(mul(p, routerLike), h)
  const loss = sumAll(mul(mixed, randomTensor(mixed.shape, 99)))
  return { leaf, h, p, viewed, routerLike, loss }
}

describe("the bf16 tape", () => {
  test("forward outputs are bf16 values except in fullPrecision and for scalars; views never round what they view", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const master = randomTensor([8, 6], seed)
        const x = toBf16(randomTensor([5, 8], seed + 1))
        const tape = Tape.make({ precision: "bf16" })
        const seen = observe(tape)
        const f = forward(tape, master, x, true)
        expect(seen.length).toBeGreaterThan(8)
        for (const s of seen) {
          if (s.rounded && s.node.output.rank > 0) expect(s.exact, `${s.node.op} output is not bf16`).toBe(true)
        }
        // The fp32 region and the scalar loss kept their float32 values.
        expect(Bf16Round.isExact(f.routerLike.data as Float32Array)).toBe(false)
        expect(seen.some((s) => !s.rounded && !s.exact)).toBe(true)
        // Forward work under noGrad rounds too (a recomputed block's first run).
        const free = tape.noGrad(() => matmul(x, f.leaf))
        expect(Bf16Round.isExact(free.data as Float32Array)).toBe(true)
        // The master storage is untouched by the cast.
        expect(bitsOf(master.data as Float32Array)).toEqual(bitsOf(randomTensor([8, 6], seed).data as Float32Array))
        // A view of an fp32-region tensor made outside the region: rounded into a copy.
        const view = reshape(f.routerLike, [f.routerLike.size])
        expect(Bf16Round.isExact(view.data as Float32Array)).toBe(true)
        expect(Bf16Round.isExact(f.routerLike.data as Float32Array)).toBe(false)
      }),
      { numRuns: 30 },
    )
  })

  test("the same ops on an fp32 tape give values that are not bf16 (so the rounding is what makes them so)", () => {
    const tape = Tape.make()
    const seen = observe(tape)
    forward(tape, randomTensor([8, 6], 7), toBf16(randomTensor([5, 8], 8)), true)
    expect(seen.filter((s) => s.node.output.rank > 0 && s.node.op !== "toBf16" && !s.exact).length).toBeGreaterThan(3)
    expect(seen.every((s) => !s.rounded)).toBe(true)
  })

  test("gradients are fp32 and reach the fp32 master leaf through the cast; products take the gradient in bf16", () => {
    // The float32 kernel (mode off), so the comparison below can be bit for bit: the bf16 GEMM
    // sums the same exact products in another order (native/Bf16Matmul.prop.ts checks it).
    const previous = Bf16Matmul.setMode("off")
    try {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
          const master = randomTensor([8, 6], seed)
          const x = toBf16(randomTensor([5, 8], seed + 1))
          const c = randomTensor([5, 6], seed + 2)
          const bf16 = Tape.make({ precision: "bf16" })
          const leaf = bf16.parameter(master)
          const cast = toBf16(leaf)
          bf16.backward(sumAll(mul(matmul(x, cast), c)))
          expect(leaf.grad).toBeDefined()
          // An fp32 tape given the bf16 weights directly and the product's gradient (c) in bf16.
          const fp32 = Tape.make()
          const direct = fp32.parameter(Tensor.detachCopy(cast))
          fp32.backward(sumAll(mul(matmul(x, direct), Tensor.detachCopy(toBf16(c)))))
          expect(bitsOf(leaf.grad?.data as Float32Array)).toEqual(bitsOf(direct.grad?.data as Float32Array))
          // ... and not the one with c as it is: the rounding is real.
          const unrounded = Tape.make()
          const plain = unrounded.parameter(Tensor.detachCopy(cast))
          unrounded.backward(sumAll(mul(matmul(x, plain), c)))
          expect(bitsOf(leaf.grad?.data as Float32Array)).not.toEqual(bitsOf(plain.grad?.data as Float32Array))
          // The gradient itself stays fp32 (not rounded).
          expect(Bf16Round.isExact(leaf.grad?.data as Float32Array)).toBe(false)
        }),
        { numRuns: 30 },
      )
    } finally {
      Bf16Matmul.setMode(previous)
    }
  })

  test("recompute on a bf16 tape: the same loss and gradients, bit for bit, as without it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const run = (recomputed: boolean) => {
          const tape = Tape.make({ precision: "bf16" })
          // A leaf over a bf16 copy (as the trainer makes): recompute closes over leaves only.
          const leaf = tape.parameter(copyToBf16(randomTensor([8, 8], seed)))
          const w = leaf
          const x = toBf16(tape.parameter(randomTensor([5, 8], seed + 1)))
          const block = ([a]: ReadonlyArray<Tensor.Tensor>) => matmul(softmax(scale(matmul(a as Tensor.Tensor, w), 2)), w)
          const out = recomputed ? Recompute.recompute("block", [x], block) : block([x])
          const loss = sumAll(mul(out, randomTensor(out.shape, seed + 2)))
          tape.backward(loss)
          return { out: bitsOf(out.data as Float32Array), loss: Tensor.item(loss), grad: bitsOf(leaf.grad?.data as Float32Array) }
        }
        const kept = run(false)
        const again = run(true)
        expect(Bf16Round.isExact(new Float32Array(Uint32Array.from(again.out).buffer))).toBe(true)
        expect(again).toEqual(kept)
      }),
      { numRuns: 20 },
    )
  })

  test("an fp32 tape rounds nothing: bit-identical to the same ops without a tape", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const master = randomTensor([8, 6], seed)
        const x = randomTensor([5, 8], seed + 1)
        const taped = forward(Tape.make(), master, x, false)
        const plain = forward(Tape.make(), master, x, false)
        const untaped = (() => {
          const h = matmul(x, master)
          return { h, p: softmax(scale(h, 3)) }
        })()
        expect(bitsOf(taped.h.data as Float32Array)).toEqual(bitsOf(untaped.h.data as Float32Array))
        expect(bitsOf(taped.p.data as Float32Array)).toEqual(bitsOf(untaped.p.data as Float32Array))
        expect(Tensor.item(taped.loss)).toBe(Tensor.item(plain.loss))
        expect(Bf16Round.isExact(taped.h.data as Float32Array)).toBe(false)
      }),
      { numRuns: 30 },
    )
  })
})
