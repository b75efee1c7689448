// Npy.decodeIntegers on damaged files: any bytes, and a valid file with bytes changed, cut or
// added, either decode to a shape whose values fill it exactly or are refused with a
// ConfigError naming the field (never another exception, which would reach the user as a trace).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Npy from "../../src/train/Npy.js"

const decodesOrRefuses = (bytes: Uint8Array) => {
  try {
    const { shape, data } = Npy.decodeIntegers(bytes, "file")
    expect(shape.reduce((a, b) => a * b, 1)).toBe(data.length)
    for (const v of data) expect(Number.isSafeInteger(v)).toBe(true)
  } catch (error) {
    expect(ConfigError.isConfigError(error), String(error)).toBe(true)
    expect((error as ConfigError.ConfigError).field).toBe("file")
  }
}

describe("Npy.decodeIntegers on damaged files", () => {
  test("any bytes decode exactly or are refused", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        decodesOrRefuses(bytes)
        // The same bytes behind a valid magic and version.
        const framed = new Uint8Array(bytes.length + 8)
        framed.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1 + ((bytes[0] ?? 0) % 3), 0])
        framed.set(bytes, 8)
        decodesOrRefuses(framed)
      }),
      { numRuns: 2000 },
    )
  })

  test("a valid file with bytes changed, cut or added decodes exactly or is refused", () => {
    const valid = Npy.encodeInt32(
      Int32Array.from({ length: 24 }, (_, i) => i * 7 - 30),
      [2, 3, 4],
    )
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.nat(255)), { maxLength: 6 }), fc.nat(valid.length), fc.uint8Array({ maxLength: 9 }), (changes, cut, extra) => {
        const bytes = Uint8Array.from(valid)
        for (const [at, value] of changes) bytes[at] = value
        decodesOrRefuses(bytes)
        decodesOrRefuses(bytes.subarray(0, cut))
        decodesOrRefuses(Uint8Array.from([...bytes, ...extra]))
      }),
      { numRuns: 2000 },
    )
  })
})
