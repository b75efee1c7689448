// Layer-to-stage partitioning: round-robin chunks (semantics.md 3.4), equal stages, the chain of
// global stages across pp ranks, and the `layers` ConfigError.
import fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Partition from "../../src/pipeline/Partition.js"

const layout = fc
  .record({ pp: fc.integer({ min: 1, max: 8 }), vpp: fc.integer({ min: 1, max: 4 }), perStage: fc.integer({ min: 1, max: 6 }) })
  .map(({ pp, vpp, perStage }) => Partition.make({ layers: pp * vpp * perStage, pp, vpp }))

describe("partition", () => {
  test("worked example: 16 layers, pp=4, vpp=2 gives rank 0 layers [1,2] and [9,10] (1-based)", () => {
    const part = Partition.make({ layers: 16, pp: 4, vpp: 2 })
    expect(Partition.layersOf(part, 0, 0)).toEqual({ start: 0, end: 2 })
    expect(Partition.layersOf(part, 0, 1)).toEqual({ start: 8, end: 10 })
    expect(Partition.layersOf(part, 3, 1)).toEqual({ start: 14, end: 16 })
    expect(Partition.holder(part, 5)).toEqual({ stage: 5, pp: 1, chunk: 1 })
    // Rank 3's chunk 0 feeds rank 0's chunk 1 around the ring.
    expect(Partition.next(part, Partition.globalStage(part, 3, 0))).toEqual({ stage: 4, pp: 0, chunk: 1 })
  })

  test("every layer belongs to exactly one (rank, chunk), in contiguous equal ranges", () => {
    fc.assert(
      fc.property(layout, (part) => {
        const owner = new Array<number>(part.layers).fill(-1)
        for (let p = 0; p < part.pp; p++) {
          for (let v = 0; v < part.vpp; v++) {
            const { start, end } = Partition.layersOf(part, p, v)
            expect(end - start).toBe(part.layers / (part.pp * part.vpp))
            const stage = Partition.globalStage(part, p, v)
            expect(stage).toBe(v * part.pp + p)
            for (let l = start; l < end; l++) {
              expect(owner[l]).toBe(-1)
              owner[l] = stage
              expect(Partition.stageOf(part, l)).toBe(stage)
            }
          }
        }
        expect(owner.every((s) => s >= 0)).toBe(true)
      }),
      { numRuns: 100 },
    )
  })

  test("next/prev walk every global stage once, first to last, through the right holders", () => {
    fc.assert(
      fc.property(layout, (part) => {
        const n = part.pp * part.vpp
        let place: Partition.Place | undefined = Partition.holder(part, 0)
        const seen: Array<number> = []
        while (place !== undefined) {
          seen.push(place.stage)
          expect(Partition.globalStage(part, place.pp, place.chunk)).toBe(place.stage)
          const after = Partition.next(part, place.stage)
          if (after !== undefined) expect(Partition.prev(part, after.stage)).toEqual(place)
          place = after
        }
        expect(seen).toEqual(Array.from({ length: n }, (_, i) => i))
        expect(Partition.isFirstStage(part, 0)).toBe(true)
        expect(Partition.isLastStage(part, n - 1)).toBe(true)
        expect(Partition.prev(part, 0)).toBeUndefined()
        expect(Partition.isLastStage(part, 0)).toBe(n === 1)
      }),
      { numRuns: 100 },
    )
  })

  test("layers not divisible by pp*vpp are rejected naming `layers`, with multiples that fit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 200 }), (pp, vpp, layers) => {
        const r = Partition.validate({ layers, pp, vpp })
        if (layers % (pp * vpp) === 0) {
          expect(Result.isSuccess(r)).toBe(true)
          return
        }
        if (!Result.isFailure(r)) throw new Error("expected a ConfigError")
        const e = r.failure
        expect(ConfigError.isConfigError(e)).toBe(true)
        expect(e.field).toBe("layers")
        expect(e.value).toBe(layers)
        const up = Math.ceil(layers / (pp * vpp)) * pp * vpp
        expect(e.fix).toContain(String(up))
        expect(e.message).toContain(`pp*vpp = ${pp}*${vpp} = ${pp * vpp}`)
      }),
      { numRuns: 200 },
    )
  })

  test("non-positive sizes are rejected naming their field", () => {
    const field = (input: Partition.PartitionInput) => {
      const r = Partition.validate(input)
      return Result.isFailure(r) ? r.failure.field : undefined
    }
    expect(field({ layers: 0, pp: 2 })).toBe("layers")
    expect(field({ layers: 8, pp: 1.5 })).toBe("pp")
    expect(field({ layers: 8, pp: 2, vpp: 0 })).toBe("vpp")
    expect(Partition.make({ layers: 8, pp: 2 }).vpp).toBe(1)
  })
})
