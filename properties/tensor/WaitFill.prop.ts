// Weight-gradient products that fill a thread's waits (GradAccumulator.waitFiller: what a threads
// job's workers run while a collective waits on a peer). Properties: with filling on, the
// accumulators hold after a settle exactly the bits of running every product at once, whenever
// the queued products run (some while "waiting", the rest at the settle), for dense and grouped
// (expert) weights over several micro-batches; a queued product leaves its accumulator untouched
// and its operands counted (heldBytes) until it runs; its operands stay readable though the
// backward pass hands back what it consumed (the suites detach recycled storage: a product
// reading it would fail); a clear drops what is queued; and forgetQueued drops it all unrun.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as GradAccumulator from "../../src/tensor/GradAccumulator.js"
import { groupedMatmul } from "../../src/tensor/ops/GroupedMatmul.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const values = (n: number, seed: number): Float32Array => {
  let s = seed
  return Float32Array.from({ length: n }, () => ((s = (s * 48271) % 2147483647) / 2147483647) * 2 - 1)
}

interface Case {
  readonly h: number
  readonly f: number
  readonly segments: ReadonlyArray<ReadonlyArray<number>>
  readonly fills: ReadonlyArray<number>
  readonly seed: number
}

const cases = fc
  .record({
    h: fc.integer({ min: 8, max: 40 }),
    f: fc.integer({ min: 8, max: 40 }),
    experts: fc.integer({ min: 1, max: 4 }),
    microBatches: fc.integer({ min: 1, max: 4 }),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .chain(({ h, f, experts, microBatches, seed }) =>
    fc.record({
      h: fc.constant(h),
      f: fc.constant(f),
      seed: fc.constant(seed),
      // Rows per expert (some experts without rows), per micro-batch.
      segments: fc.array(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: experts, maxLength: experts }), {
        minLength: microBatches,
        maxLength: microBatches,
      }),
      // Queued products run "while waiting" after each micro-batch's backward.
      fills: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: microBatches, maxLength: microBatches }),
    }),
  )

/** y = grouped(x V, W): V [h, h] dense, W [E, h, f] per expert; each micro-batch's backward into the accumulators. */
const step = (c: Case, dense: Float32Array, grouped: Float32Array, between: (i: number) => void): void => {
  const experts = c.segments[0]?.length as number
  c.segments.forEach((segments, i) => {
    const rows = segments.reduce((a, b) => a + b, 0)
    const tape = Tape.make()
    const v = tape.parameter(Tensor.fromStorage(values(c.h * c.h, c.seed + 1), [c.h, c.h]), dense)
    const w = tape.parameter(Tensor.fromStorage(values(experts * c.h * c.f, c.seed + 2), [experts, c.h, c.f]), grouped)
    const x = Tensor.fromStorage(values(rows * c.h, c.seed + 3 + 2 * i), [rows, c.h])
    const y = groupedMatmul(matmul(x, v), w, segments)
    tape.backward(y, { gradient: Tensor.fromStorage(values(rows * c.f, c.seed + 4 + 2 * i), [rows, c.f]) })
    between(i)
  })
}

const accumulators = (c: Case) => {
  const dense = new Float32Array(c.h * c.h)
  const grouped = new Float32Array((c.segments[0]?.length as number) * c.h * c.f)
  GradAccumulator.clear(dense)
  GradAccumulator.clear(grouped)
  return { dense, grouped }
}

describe("weight gradients that fill waits", () => {
  test("the accumulators after a settle hold the bits of running every product at once, whenever the queued ones run; queued ones are held and counted, a clear drops them", () => {
    const samples = fc.sample(cases, { numRuns: 40, seed: 20261204 })
    // First every case with products run at once (filling is per thread and, once stopped, off).
    const atOnce = samples.map((c) => {
      const { dense, grouped } = accumulators(c)
      step(c, dense, grouped, () => {})
      GradAccumulator.settle(dense)
      GradAccumulator.settle(grouped)
      return { dense, grouped }
    })
    const filler = GradAccumulator.waitFiller()
    try {
      samples.forEach((c, k) => {
        const { dense, grouped } = accumulators(c)
        const held = [dense, grouped]
        step(c, dense, grouped, (i) => {
          // The first micro-batch's products wait: nothing written yet, their rows counted.
          if (i === 0) {
            expect(filler.pending()).toBe(true)
            expect(dense.every((x) => x === 0) && grouped.every((x) => x === 0)).toBe(true)
            if ((c.segments[0] ?? []).some((r) => r > 0)) expect(GradAccumulator.heldBytes(held)).toBeGreaterThan(0)
          }
          for (let j = 0; j < (c.fills[i] as number) && filler.pending(); j++) filler.runOne()
        })
        GradAccumulator.settle(dense)
        GradAccumulator.settle(grouped)
        expect(GradAccumulator.heldBytes(held)).toBe(0)
        expect(filler.pending()).toBe(false)
        expect(Array.from(dense)).toEqual(Array.from(atOnce[k]?.dense ?? []))
        expect(Array.from(grouped)).toEqual(Array.from(atOnce[k]?.grouped ?? []))
        // A new step's clear drops what is queued: a settle then gives zeros.
        step(c, dense, grouped, () => {})
        GradAccumulator.clear(dense)
        GradAccumulator.clear(grouped)
        expect(filler.pending()).toBe(false)
        GradAccumulator.settle(dense)
        GradAccumulator.settle(grouped)
        expect(dense.every((x) => x === 0) && grouped.every((x) => x === 0)).toBe(true)
        // A job that ends unsettled: its worker forgets what it queued, running nothing (one
        // micro-batch: a later one's products would run the earlier ones' first).
        step({ ...c, segments: c.segments.slice(0, 1) }, dense, grouped, () => {})
        expect(filler.pending()).toBe(true)
        GradAccumulator.forgetQueued()
        expect(filler.pending()).toBe(false)
        // (The grouped weight's products are never thin: only queued ones held its rows.)
        expect(GradAccumulator.heldBytes([grouped])).toBe(0)
        expect(dense.every((x) => x === 0) && grouped.every((x) => x === 0)).toBe(true)
      })
    } finally {
      filler.stop()
    }
  })
})
