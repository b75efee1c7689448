// The native dispatch path (src/moe/PermuteKernels.ts on cuda/src/kernels/dispatch.cc) gives the
// same bits as the TypeScript path (PLEAT_NATIVE_DISPATCH=off: the composition of tensor ops) and
// as plain loops written here from semantics.md 2.2 (float32 products and adds, Math.fround at
// every step), forward and backward, on every ISA the CPU has: random maps with empty experts
// and tokens without rows, padded (dropping) maps, rows with -0, widths that hit the vector
// heads and tails, and shapes large enough for the thread pool and the streaming stores.
// Float64 keeps the TypeScript path and is checked against the same loops in float64.
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import { dispatchKernels, setNativeDispatchOff } from "../../src/native/CpuDispatch.js"
import * as DispatchPlan from "../../src/moe/DispatchPlan.js"
import * as Dropping from "../../src/moe/Dropping.js"
import * as Permute from "../../src/moe/Permute.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import { add, mul } from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { rng } from "../tensor/gradcheck.js"
import { seed } from "./arbitraries.js"

const native = dispatchKernels()
const isas =
  native === undefined ? [] : (["scalar", "avx2", "avx512"] as const).filter((isa) => isa === "scalar" || (isa === "avx2" ? Cpu.cpuFeatures().avx2 : Cpu.cpuFeatures().avx512f))
afterAll(() => {
  setNativeDispatchOff(false)
  if (native !== undefined) Cpu.setIsa("auto")
})

type DType = "float32" | "float64"

/** Values in [-3, 3] with exact zeros and negative zeros sprinkled in. */
const values = (n: number, s: number): Array<number> => {
  const r = rng(s)
  return Array.from({ length: n }, () => {
    const u = r()
    return u < 0.05 ? -0 : u < 0.1 ? 0 : (r() * 2 - 1) * 3
  })
}
const tensorOf = (shape: Array<number>, s: number, dtype: DType) => Tensor.fromArray(values(Tensor.sizeOf(shape), s), shape, { dtype })

/** A map of any density, or a padded one (every expert exactly min(C, T) rows) from Dropping. */
const mapCase = fc
  .record({
    t: fc.integer({ min: 0, max: 24 }),
    e: fc.integer({ min: 1, max: 11 }),
    h: fc.constantFrom(0, 1, 3, 16, 17, 33, 63, 64, 65, 100, 131),
    density: fc.constantFrom(0, 0.1, 0.3, 0.7, 1),
    padded: fc.boolean(),
    capacityFactor: fc.constantFrom(0.5, 1, 2),
    s: seed,
  })
  .map(({ t, e, h, density, padded, capacityFactor, s }) => {
    const r = rng(s)
    let map = RoutingMap.make(
      t,
      e,
      Array.from({ length: t * e }, () => (r() < density ? 1 : 0)),
    )
    let probs = Tensor.fromArray(
      Array.from(map.mask, (m) => (m === 1 ? r() : 0)),
      [t, e],
    )
    if (padded) {
      const dropped = Dropping.applyTokenDropping(probs, map, { topk: Math.max(1, Math.round(density * e)), capacityFactor, dropPolicy: "probs", padToCapacity: true })
      map = dropped.routingMap
      probs = dropped.probs
    }
    return { t, e, h, map, probs: Array.from(probs.data), s }
  })

/** Bit patterns of float32 values (-0 and +0 differ), or the float64 values themselves (Object.is). */
const bits = (t: Tensor.Tensor | undefined): Array<number> =>
  t === undefined
    ? []
    : t.dtype === "float32"
      ? Array.from(new Uint32Array(Float32Array.from(t.data).buffer))
      : Array.from(t.data, (v) => (Object.is(v, -0) ? Number.NEGATIVE_INFINITY : v))

/** Where two tensors first differ in shape, dtype or bits ("" when they agree): fast on large ones. */
const firstDifference = (a: Tensor.Tensor | undefined, b: Tensor.Tensor | undefined): string => {
  if (a === undefined || b === undefined) return a === b ? "" : "one is missing"
  if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) return `${a.dtype} [${a.shape}] against ${b.dtype} [${b.shape}]`
  const x = a.dtype === "float32" ? new Uint32Array(Float32Array.from(a.data).buffer) : new BigUint64Array(Float64Array.from(a.data).buffer)
  const y = b.dtype === "float32" ? new Uint32Array(Float32Array.from(b.data).buffer) : new BigUint64Array(Float64Array.from(b.data).buffer)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `element ${i}: ${a.data[i]} against ${b.data[i]}`
  return ""
}

/** `f` on the TypeScript path and on the native path with every ISA; each must equal the first. */
const agree = (f: () => ReadonlyArray<Tensor.Tensor | undefined>): ReadonlyArray<Array<number>> => {
  setNativeDispatchOff(true)
  const reference = f()
  setNativeDispatchOff(false)
  for (const isa of isas) {
    Cpu.setIsa(isa)
    f().forEach((t, i) => expect(firstDifference(t, reference[i]), `output ${i} on ${isa}`).toBe(""))
  }
  Cpu.setIsa("auto")
  return reference.map(bits)
}

// ---- plain loops, from the definitions -----------------------------------------------------------

const roundFor = (dtype: DType) => (dtype === "float32" ? Math.fround : (x: number) => x)

/** Expert-major, token-ascending rows of the map. */
const loopOrder = (map: RoutingMap.RoutingMap) => {
  const tokens: Array<number> = []
  const experts: Array<number> = []
  for (let e = 0; e < map.numExperts; e++) {
    for (let t = 0; t < map.numTokens; t++) {
      if (map.mask[t * map.numExperts + e] === 1) {
        tokens.push(t)
        experts.push(e)
      }
    }
  }
  return { tokens, experts }
}

/** out[t] = 0 + sum over rows j of t, increasing j, of round(w[j] * rows[j]), rounded at each add. */
const loopUnpermute = (rows: ArrayLike<number>, index: ReadonlyArray<number>, t: number, h: number, weights: ArrayLike<number> | undefined, dtype: DType) => {
  const round = roundFor(dtype)
  const out = new Array<number>(t * h).fill(0)
  index.forEach((tok, j) => {
    for (let c = 0; c < h; c++) {
      const p = weights === undefined ? (rows[j * h + c] as number) : round((weights[j] as number) * (rows[j * h + c] as number))
      out[tok * h + c] = round((out[tok * h + c] as number) + p)
    }
  })
  return out
}

const asTensor = (xs: ReadonlyArray<number>, shape: Array<number>, dtype: DType) => Tensor.fromArray(xs, shape, { dtype })

describe("native dispatch", () => {
  test("the plan, permute and weighted unpermute equal the loops (float32 and float64) and the native path equals the TypeScript path bit for bit", () => {
    fc.assert(
      fc.property(mapCase, fc.constantFrom<DType>("float32", "float64"), ({ t, e, h, map, probs, s }, dtype) => {
        const tokens = tensorOf([t, h], s + 1, dtype)
        const p = asTensor(probs, [t, e], dtype)
        const [sorted, experts, counts, permuted, permutedProbs, plain, weighted] = agree(() => {
          const r = Permute.permute(tokens, map, p)
          return [
            Tensor.fromArray(Array.from(r.sortedIndices), [r.sortedIndices.length], { dtype: "float64" }),
            Tensor.fromArray(r.plan.experts, [r.plan.experts.length], { dtype: "float64" }),
            Tensor.fromArray(r.tokensPerExpert, [e], { dtype: "float64" }),
            r.permuted,
            r.permutedProbs,
            Permute.unpermute(r.permuted, r.sortedIndices, t),
            Permute.unpermute(r.permuted, r.sortedIndices, t, r.permutedProbs),
          ]
        })
        const order = loopOrder(map)
        expect(sorted).toEqual(order.tokens)
        expect(experts).toEqual(order.experts)
        expect(counts).toEqual(RoutingMap.tokensPerExpert(map))
        const rows = order.tokens.flatMap((tok) => Array.from(tokens.data.subarray(tok * h, (tok + 1) * h)))
        expect(permuted).toEqual(bits(asTensor(rows, [order.tokens.length, h], dtype)))
        const rowProbs = order.tokens.map((tok, j) => p.data[tok * e + (order.experts[j] as number)] as number)
        expect(permutedProbs).toEqual(bits(asTensor(rowProbs, [rowProbs.length], dtype)))
        expect(plain).toEqual(bits(asTensor(loopUnpermute(rows, order.tokens, t, h, undefined, dtype), [t, h], dtype)))
        expect(weighted).toEqual(bits(asTensor(loopUnpermute(rows, order.tokens, t, h, rowProbs, dtype), [t, h], dtype)))
      }),
      { numRuns: 150 },
    )
  })

  test("gradients of permute + weighted unpermute (tokens, probs) and of unpermute alone (rows, weights) are the same bits", () => {
    fc.assert(
      fc.property(mapCase, ({ t, e, h, map, probs, s }) => {
        const g = tensorOf([t, h], s + 2, "float32")
        agree(() => {
          const tape = Tape.make()
          const x = tape.parameter(tensorOf([t, h], s + 1, "float32"))
          const q = tape.parameter(Tensor.fromArray(probs, [t, e]))
          const r = Permute.permute(x, map, q)
          const y = Permute.unpermute(r.permuted, r.sortedIndices, t, r.permutedProbs)
          tape.backward(y, { gradient: g })
          return [y, x.grad, q.grad]
        })
        const n = RoutingMap.count(map)
        agree(() => {
          const tape = Tape.make()
          const rows = tape.parameter(tensorOf([n, h], s + 3, "float32"))
          const w = tape.parameter(tensorOf([n], s + 4, "float32"))
          const y = Permute.unpermute(rows, Permute.order(map).sortedIndices, t, w)
          tape.backward(y, { gradient: g })
          return [y, rows.grad, w.grad]
        })
      }),
      { numRuns: 80 },
    )
  })

  test("the dispatcher's chunk sort (rows and their probs): values and gradients are the same bits", () => {
    // Any order, and often one that moves nothing (no pass forward then).
    const chunks = fc
      .array(fc.nat({ max: 4 }), { minLength: 1, maxLength: 6 })
      .chain((sizes) =>
        fc.tuple(fc.constant(sizes), fc.oneof(fc.constant([...sizes.keys()]), fc.shuffledSubarray([...sizes.keys()], { minLength: sizes.length, maxLength: sizes.length }))),
      )
    fc.assert(
      fc.property(mapCase, chunks, ({ h, s }, [sizes, order]) => {
        const m = sizes.reduce((a, b) => a + b, 0)
        agree(() => {
          const tape = Tape.make()
          const input = tape.parameter(tensorOf([m, h], s + 6, "float32"))
          const p = tape.parameter(tensorOf([m], s + 9, "float32"))
          const r = Permute.sortChunksByIndex(input, sizes, order, p)
          const loss = add(Reduce.sumAll(mul(r.output, tensorOf([m, h], s + 7, "float32"))), Reduce.sumAll(mul(r.probs as Tensor.Tensor, tensorOf([m], s + 8, "float32"))))
          tape.backward(loss)
          return [r.output, r.probs, input.grad, p.grad]
        })
      }),
      { numRuns: 80 },
    )
  })

  test("a permute's plan (typed rows, plain arrays made on first read) equals the checked plan of its rows", () => {
    fc.assert(
      fc.property(mapCase, fc.constantFrom(1, 2, 3), ({ t, e, h, map, probs, s }, destinations) => {
        const r = Permute.permute(tensorOf([t, h], s, "float32"), map, Tensor.fromArray(probs, [t, e]))
        const plan = r.plan
        expect(Array.from(DispatchPlan.rowTokens(plan))).toEqual(Array.from(r.sortedIndices))
        expect(DispatchPlan.numRows(plan)).toBe(r.sortedIndices.length)
        const checked = DispatchPlan.make({ numTokens: t, numExperts: e, sortedIndices: plan.sortedIndices, experts: plan.experts, probs: plan.probs })
        expect({ ...plan }).toEqual({ ...checked })
        expect(Object.isFrozen(plan) && Object.isFrozen(plan.sortedIndices) && Object.isFrozen(plan.experts) && Object.isFrozen(plan.probs)).toBe(true)
        expect(plan.sortedIndices).toBe(plan.sortedIndices)
        if (e % destinations === 0) {
          const split = DispatchPlan.fromOrder({
            numTokens: t,
            numExperts: e,
            sortedIndices: r.sortedIndices,
            experts: DispatchPlan.rowExperts(plan),
            tokensPerExpert: plan.tokensPerExpert,
            numDestinations: destinations,
          })
          expect(split.splits).toEqual(DispatchPlan.splitsFor(plan.tokensPerExpert, destinations))
        }
      }),
      { numRuns: 100 },
    )
  })

  test("large shapes (thread pool, streaming stores) are the same bits", { timeout: 120_000 }, () => {
    for (const [t, e, k, h] of [
      [4096, 64, 8, 160],
      [8192, 8, 2, 600],
    ] as const) {
      const r = rng(t + h)
      const mask = new Uint8Array(t * e)
      for (let tok = 0; tok < t; tok++) for (let j = 0; j < k; j++) mask[tok * e + Math.floor(r() * e)] = 1
      const map = RoutingMap.make(t, e, mask)
      const x = tensorOf([t, h], 11, "float32")
      const probs = Tensor.fromArray(
        Array.from(mask, (v) => v * r()),
        [t, e],
      )
      agree(() => {
        const p = Permute.permute(x, map, probs)
        return [p.permuted, p.permutedProbs, Permute.unpermute(p.permuted, p.sortedIndices, t), Permute.unpermute(p.permuted, p.sortedIndices, t, p.permutedProbs)]
      })
    }
  })

  test.runIf(native !== undefined)("the binding checks its arguments before writing anything", () => {
    const k = native as NonNullable<typeof native>
    const out = new Float32Array(4).fill(7)
    expect(() => k.combineRows(new Float32Array(4), 2, Int32Array.of(0, 2), null, null, 2, 2, out)).toThrow(RangeError)
    expect(() => k.combineRows(new Float64Array(4) as unknown as Float32Array, 2, Int32Array.of(0, 1), null, null, 2, 2, out)).toThrow(TypeError)
    expect(() => k.permuteRows(new Float32Array(4), 2, Int32Array.of(0, 5), out, 2, null, null, 0, null)).toThrow(RangeError)
    expect(() => k.permuteRows(new Float32Array(4), 2, Int32Array.of(0, 1), out, 3, null, null, 0, null)).toThrow(/probs and experts/)
    expect(() => k.routingOrder(new Uint8Array(4), 2, 2, new Int32Array(1), new Int32Array(1))).toThrow(RangeError)
    expect(() => k.scatterPairs(new Float32Array(2), 1, Int32Array.of(0, 1), Int32Array.of(0, 3), 2, out)).toThrow(RangeError)
    expect(Array.from(out)).toEqual([7, 7, 7, 7])
    expect(() => Permute.unpermute(Tensor.zeros([2, 2]), Int32Array.of(0, 3), 2)).toThrow(/outside|out of range/)
  })
})
