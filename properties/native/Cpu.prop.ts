// Properties of the CPU addon (src/native/Cpu.ts): axpy and copy against JS references on every
// code path this CPU has, zero-copy on views and shared buffers, typed argument errors.
import fc from "fast-check"
import { afterEach, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import { axpyCase, axpyF32Ref, axpyF64Ref, f32, f32Close, f64, guardsIntact, place, placement } from "./arbitraries.js"

const features = Cpu.cpuFeatures()
// Every ISA this CPU can run: the suites pin each in turn, so the AVX2 and scalar paths are
// tested even on an AVX-512 machine.
const isas: ReadonlyArray<Cpu.Isa> = [...(features.avx512f ? (["avx512"] as const) : []), ...(features.avx2 && features.fma ? (["avx2"] as const) : []), "scalar"]

afterEach(() => {
  Cpu.setIsa("auto")
})

describe.each(isas)("axpy on %s", (isa) => {
  test("float32: within 1e-6 of the JS reference, in place, guards untouched", () => {
    Cpu.setIsa(isa)
    fc.assert(
      fc.property(axpyCase(f32), ({ a, xs, ys, px, py }) => {
        const x = place(Float32Array, xs, px)
        const y = place(Float32Array, ys, py)
        const want = axpyF32Ref(a, x, y)
        Cpu.axpy(a, x, y)
        expect(guardsIntact(x) && guardsIntact(y)).toBe(true)
        expect(Array.from(x)).toEqual(Array.from(new Float32Array(xs)))
        for (let i = 0; i < want.length; i++) {
          if (!f32Close(y[i] ?? NaN, want[i] ?? NaN, a, x[i] ?? NaN, Math.fround(ys[i] ?? NaN))) {
            throw new Error(`element ${i}: got ${y[i]}, want ${want[i]} (a ${a}, x ${x[i]}, y ${ys[i]})`)
          }
        }
      }),
      { numRuns: 150 },
    )
  })

  test("float64: bit-identical to JS `y + a * x` (signed zeros included)", () => {
    Cpu.setIsa(isa)
    fc.assert(
      fc.property(axpyCase(f64), ({ a, xs, ys, px, py }) => {
        const x = place(Float64Array, xs, px)
        const y = place(Float64Array, ys, py)
        const want = axpyF64Ref(a, xs, ys)
        Cpu.axpy(a, x, y)
        expect(guardsIntact(x) && guardsIntact(y)).toBe(true)
        want.forEach((w, i) => {
          if (!Object.is(y[i], w)) throw new Error(`element ${i}: got ${y[i]}, want ${w}`)
        })
      }),
      { numRuns: 150 },
    )
  })

  test("x and y as the same view: element-wise y += a * y", () => {
    Cpu.setIsa(isa)
    fc.assert(
      fc.property(axpyCase(f64), ({ a, ys, py }) => {
        const y = place(Float64Array, ys, py)
        Cpu.axpy(a, y, y)
        expect(Array.from(y)).toEqual(axpyF64Ref(a, ys, ys))
      }),
    )
  })

  test("x and y as disjoint views of one SharedArrayBuffer", () => {
    Cpu.setIsa(isa)
    fc.assert(
      fc.property(axpyCase(f64), fc.nat(7), ({ a, xs, ys }, gap) => {
        const n = xs.length
        const all = new Float64Array(new SharedArrayBuffer((2 * n + gap) * 8))
        const x = all.subarray(0, n)
        const y = all.subarray(n + gap, 2 * n + gap)
        x.set(xs)
        y.set(ys)
        Cpu.axpy(a, x, y)
        expect(Array.from(y)).toEqual(axpyF64Ref(a, xs, ys))
      }),
    )
  })

  test("copy: exact, zero-copy on views, memmove semantics when views overlap", () => {
    Cpu.setIsa(isa)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), fc.nat(40), fc.nat(40), fc.boolean(), (bytes, s, d, shared) => {
        const n = bytes.length
        const size = Math.max(s, d) + n
        const buffer = shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size)
        const all = new Uint8Array(buffer)
        all.set(bytes, s)
        const want = Uint8Array.from(all).copyWithin(d, s, s + n)
        Cpu.copy(all.subarray(d, d + n), all.subarray(s, s + n))
        expect(all).toEqual(want)
      }),
    )
  })
})

describe("copy", () => {
  test("between different element types of equal byte length, across buffers", () => {
    fc.assert(
      fc.property(fc.array(f64, { maxLength: 200 }), placement, (values, at) => {
        const src = place(Float64Array, values, at)
        const dst = new Uint8Array(new SharedArrayBuffer(src.byteLength + 3)).subarray(3)
        Cpu.copy(dst, src)
        expect(dst).toEqual(new Uint8Array(src.buffer, src.byteOffset, src.byteLength))
      }),
    )
  })
})

describe("argument errors are TypeErrors naming the problem", () => {
  const x32 = new Float32Array(4)
  test("axpy: element types differ", () => {
    expect(() => Cpu.axpy(1, x32, new Float64Array(4) as unknown as Float32Array)).toThrow(
      new TypeError("axpy: x and y must have the same element type, got Float32Array and Float64Array"),
    )
  })

  test("axpy: lengths differ, and y is left unchanged", () => {
    fc.assert(
      fc.property(fc.nat(50), fc.nat(50), fc.boolean(), (n, m, double) => {
        fc.pre(n !== m)
        const ctor = double ? Float64Array : Float32Array
        const x = new ctor(n).fill(1)
        const y = new ctor(m).fill(2)
        expect(() => Cpu.axpy(3, x as Float64Array, y as Float64Array)).toThrow(new TypeError(`axpy: x and y must have the same length, got ${n} and ${m}`))
        expect(y.every((v) => v === 2)).toBe(true)
      }),
    )
  })

  test("axpy: not a float array, not a number, wrong arity, partial overlap", () => {
    const loose = Cpu.axpy as unknown as (...args: Array<unknown>) => void
    expect(() => loose(1, new Int32Array(4), new Int32Array(4))).toThrow(new TypeError("axpy: x must be a Float32Array or Float64Array, got Int32Array"))
    expect(() => loose("2", x32, x32)).toThrow(new TypeError("axpy: a must be a number, got string"))
    expect(() => loose(2, [1, 2], x32)).toThrow(new TypeError("axpy: x must be a typed array, got Array"))
    // The wrapper always forwards three arguments, so a missing y arrives as undefined.
    expect(() => loose(2, x32)).toThrow(new TypeError("axpy: y must be a typed array, got undefined"))
    expect(() => Cpu.axpy(2, x32.subarray(0, 3), x32.subarray(1, 4))).toThrow(new TypeError("axpy: x and y overlap in memory but are not the same view"))
  })

  test("copy: byte lengths differ, not a typed array", () => {
    expect(() => Cpu.copy(new Uint8Array(8), new Float32Array(3))).toThrow(new TypeError("copy: dst and src must have the same byte length, got 8 and 12"))
    const loose = Cpu.copy as unknown as (...args: Array<unknown>) => void
    expect(() => loose(new ArrayBuffer(4), new Uint8Array(4))).toThrow(new TypeError("copy: dst must be a typed array, got ArrayBuffer"))
  })
})

describe("fmaPeak, cpuFeatures, setIsa", () => {
  test("fmaPeak returns a positive finite GFLOP/s on the active ISA, for 1 and all cores", () => {
    for (const threads of [1, features.cores]) {
      const peak = Cpu.fmaPeak(0.05, threads)
      expect(Number.isFinite(peak.gflops) && peak.gflops > 0).toBe(true)
      expect(peak.isa).toBe(Cpu.activeIsa())
    }
  })

  test.each(isas)("fmaPeak runs pinned to %s", (isa) => {
    Cpu.setIsa(isa)
    const peak = Cpu.fmaPeak(0.02, 1)
    expect(peak.isa).toBe(isa)
    expect(peak.gflops).toBeGreaterThan(0)
  })

  test("fmaPeak rejects out-of-range arguments with RangeError", () => {
    expect(() => Cpu.fmaPeak(0, 1)).toThrow(RangeError)
    expect(() => Cpu.fmaPeak(61, 1)).toThrow(RangeError)
    expect(() => Cpu.fmaPeak(0.01, 0)).toThrow(RangeError)
    expect(() => Cpu.fmaPeak(0.01, 1.5)).toThrow(RangeError)
    expect(() => Cpu.fmaPeak(Number.NaN, 1)).toThrow(RangeError)
  })

  test("cpuFeatures is consistent with the ISA picked by default", () => {
    expect(features.cores).toBeGreaterThanOrEqual(1)
    const best = features.avx512f ? "avx512" : features.avx2 && features.fma ? "avx2" : "scalar"
    expect(Cpu.setIsa("auto")).toBe(best)
    expect(Cpu.activeIsa()).toBe(best)
  })

  test("setIsa rejects unknown names", () => {
    expect(() => Cpu.setIsa("sse" as Cpu.Isa)).toThrow(RangeError)
    expect(Cpu.activeIsa()).toBe(isas[0])
  })
})
