// The router's input jitter (InputJitter): every factor lies in [1 - eps, 1 + eps]; a token's row
// is a function of its place in the data stream and the layer only (the same in any batch of rows,
// in any order), and other places or layers give other rows; over many tokens the factors average
// 1 (uniform noise).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as InputJitter from "../../src/moe/InputJitter.js"

describe("InputJitter.factors", () => {
  test("lie in [1 - eps, 1 + eps], row by row a function of the token's place and the layer", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 1e-6, max: 0.999, noNaN: true }),
        (places, layer, hidden, eps) => {
          const f = InputJitter.factors(places, layer, hidden, eps, "float64")
          for (const v of f) {
            expect(v).toBeGreaterThanOrEqual(1 - eps)
            expect(v).toBeLessThanOrEqual(1 + eps)
          }
          // Each row alone, or the rows reversed, gives the same row for the same place.
          places.forEach((p, r) => expect(Array.from(InputJitter.factors([p], layer, hidden, eps, "float64"))).toEqual(Array.from(f.subarray(r * hidden, (r + 1) * hidden))))
          const reversed = InputJitter.factors([...places].reverse(), layer, hidden, eps, "float64")
          const n = places.length
          expect(Array.from(reversed.subarray(0, hidden))).toEqual(Array.from(f.subarray((n - 1) * hidden, n * hidden)))
        },
      ),
      { numRuns: 200 },
    )
  })

  test("other places and other layers draw other factors; many average 1", () => {
    const hidden = 64
    const a = InputJitter.factors([12345], 3, hidden, 0.1, "float64")
    expect(Array.from(InputJitter.factors([12346], 3, hidden, 0.1, "float64"))).not.toEqual(Array.from(a))
    expect(Array.from(InputJitter.factors([12345], 4, hidden, 0.1, "float64"))).not.toEqual(Array.from(a))
    expect(Array.from(InputJitter.factors([12345 + 2 ** 32], 3, hidden, 0.1, "float64"))).not.toEqual(Array.from(a))
    const many = InputJitter.factors(
      Array.from({ length: 4096 }, (_, i) => i),
      0,
      hidden,
      0.5,
      "float64",
    )
    const mean = Array.from(many).reduce((s, v) => s + v, 0) / many.length
    expect(Math.abs(mean - 1)).toBeLessThan(0.005)
  })
})
