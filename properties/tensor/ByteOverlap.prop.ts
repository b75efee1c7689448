// DType's byte-overlap rules on random views of a few shared buffers (as a slab's views share
// one): `overlaps` is "the two storages share a byte" (checked against the bytes themselves, for
// non-empty views), `overlapsInBuffer` agrees with it for views of one buffer, and asking a
// ByteIndex (`overlapsAny(byteIndex(xs), s)`) agrees with asking each of xs.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as DType from "../../src/tensor/DType.js"

const buffers = [new ArrayBuffer(256), new ArrayBuffer(256), new ArrayBuffer(256)]

/** A non-empty float32 or float64 view of one of the buffers. */
const viewArb = fc
  .record({ buffer: fc.nat({ max: buffers.length - 1 }), wide: fc.boolean(), start: fc.nat({ max: 31 }), length: fc.integer({ min: 1, max: 16 }) })
  .map(({ buffer, wide, start, length }): DType.Storage => {
    const b = buffers[buffer] as ArrayBuffer
    const bytes = wide ? 8 : 4
    const first = Math.min(start, b.byteLength / bytes - length)
    return wide ? new Float64Array(b, first * bytes, length) : new Float32Array(b, first * bytes, length)
  })

/** Whether two views share a byte, counted byte by byte. */
const shareAByte = (a: DType.Storage, b: DType.Storage): boolean => {
  if (a.buffer !== b.buffer) return false
  for (let i = a.byteOffset; i < a.byteOffset + a.byteLength; i++) if (i >= b.byteOffset && i < b.byteOffset + b.byteLength) return true
  return false
}

describe("byte overlap", () => {
  test("overlaps is sharing a byte; overlapsInBuffer agrees on views of one buffer", () => {
    fc.assert(
      fc.property(viewArb, viewArb, (a, b) => {
        expect(DType.overlaps(a, b)).toBe(shareAByte(a, b))
        expect(DType.overlaps(a, b)).toBe(DType.overlaps(b, a))
        if (a.buffer === b.buffer) expect(DType.overlapsInBuffer(a, b)).toBe(shareAByte(a, b))
      }),
      { numRuns: 500 },
    )
  })

  test("a ByteIndex of xs answers as asking each of xs", () => {
    fc.assert(
      fc.property(fc.array(viewArb, { maxLength: 12 }), fc.array(viewArb, { minLength: 1, maxLength: 8 }), (xs, asked) => {
        const index = DType.byteIndex(xs)
        for (const s of asked) expect(DType.overlapsAny(index, s)).toBe(xs.some((x) => DType.overlaps(x, s)))
      }),
      { numRuns: 300 },
    )
  })
})
