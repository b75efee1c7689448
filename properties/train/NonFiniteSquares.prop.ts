// The check for non-finite gradients with its sums of squares kept (NonFinite.keepingSquares):
// the trainer of a rank whose sync crosses no other rank reads the global norm's squares from
// that check instead of a second pass. On random gradients, some with a NaN or an infinity
// planted: the verdict is the plain check's, and when every gradient is finite the kept sums
// are each gradient's SumSquares, bit for bit, for every parameter.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { sumSquares } from "../../src/tensor/kernels/SumSquares.js"
import * as NonFinite from "../../src/train/NonFinite.js"
import type * as RankParams from "../../src/train/RankParams.js"

const special = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)

const gradient = fc.record({
  values: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }), { minLength: 1, maxLength: 64 }),
  plant: fc.option(fc.tuple(fc.nat(), special), { freq: 4 }),
  float64: fc.boolean(),
})

/** A held shard with just what the check reads (its name and gradient). */
const heldOf = (name: string, grad: Float32Array | Float64Array): RankParams.Held => ({ spec: { name }, grad }) as unknown as RankParams.Held

describe("the check's kept sums of squares", () => {
  test("same verdict as the plain check; finite gradients leave every sum, bit for bit", () => {
    fc.assert(
      fc.property(fc.array(gradient, { minLength: 1, maxLength: 6 }), fc.double({ noNaN: false }), (grads, loss) => {
        const params = new Map<string, RankParams.Held>()
        grads.forEach((g, i) => {
          const grad = g.float64 ? Float64Array.from(g.values) : Float32Array.from(g.values)
          if (g.plant !== null) grad[g.plant[0] % grad.length] = g.plant[1]
          params.set(`p${i}`, heldOf(`p${i}`, grad))
        })
        const kept = new Map<RankParams.Held, number>()
        const verdict = NonFinite.find(loss, params, NonFinite.keepingSquares(kept))
        const plain = NonFinite.find(loss, params, NonFinite.onHost)
        expect(verdict?.message).toBe(plain?.message)
        if (verdict !== undefined) return
        expect(kept.size).toBe(params.size)
        for (const h of params.values()) expect(Object.is(kept.get(h), sumSquares(h.grad))).toBe(true)
      }),
      { numRuns: 200 },
    )
  })
})
