// Properties of the optional CUDA addon (src/native/Cuda.ts). Without a GPU (the dev machine,
// CI) only the status and error paths run; the device suite runs where cudaStatus() says a GPU
// is available. Set PLEAT_REQUIRE_GPU=1 on a GPU runner so a missing device fails instead of
// skipping.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Addon from "../../src/native/Addon.js"
import * as Cpu from "../../src/native/Cpu.js"
import * as Cuda from "../../src/native/Cuda.js"
import { cudaArrays } from "../../src/native/CudaArrays.js"
import { axpyCase, axpyF32Ref, f32, f32Close, place } from "./arbitraries.js"

const status = Cuda.cudaStatus()
const built = Addon.isBuilt("pleat_cuda")
const requireGpu = process.env.PLEAT_REQUIRE_GPU === "1"

describe("CUDA status", () => {
  test("cudaStatus never throws and agrees with the build and the runtime", () => {
    if (!built) {
      expect(status).toMatchObject({ available: false, reason: "not built" })
      return
    }
    const info = Cuda.deviceInfo()
    expect(info.runtimeVersion).toBeGreaterThan(0)
    if (info.count > 0) {
      expect(status).toEqual({ available: true, devices: info.count })
    } else {
      expect(status).toMatchObject({ available: false, reason: "no device" })
      expect(info.error === null || info.error.startsWith("cuda")).toBe(true)
    }
  })

  test.runIf(requireGpu)("PLEAT_REQUIRE_GPU=1: a device is available", () => {
    expect(status).toMatchObject({ available: true })
  })

  test.runIf(built && !status.available)('without a device, axpy throws "no device:"', () => {
    const x = new Float32Array([1, 2, 3])
    const y = new Float32Array([4, 5, 6])
    expect(() => Cuda.axpy(2, x, y)).toThrow(/^no device: /)
    expect(() => Cuda.axpy(2, new Float32Array(0), new Float32Array(0))).toThrow(/^no device: /)
    expect(Array.from(y)).toEqual([4, 5, 6])
  })

  test.runIf(built)("argument errors are TypeErrors, with or without a device", () => {
    const loose = Cuda.axpy as unknown as (...args: Array<unknown>) => void
    expect(() => loose(1, new Float64Array(2), new Float64Array(2))).toThrow(new TypeError("axpy: x and y must be Float32Array, got Float64Array and Float64Array"))
    expect(() => Cuda.axpy(1, new Float32Array(2), new Float32Array(3))).toThrow(new TypeError("axpy: x and y must have the same length, got 2 and 3"))
  })

  test.runIf(built && !status.available)('without a device, device memory throws "no device:"', () => {
    const memory = Cuda.deviceMemory()
    expect(() => memory.allocate(1024, 0)).toThrow(/^no device: /)
    expect(() => memory.stats()).toThrow(/^no device: /)
  })

  test.runIf(built)("rows of no columns: gatherRows and scatterAddRows do nothing, with or without a device, as the CPU's; other column counts are checked", () => {
    const ops = Cuda.deviceOps()
    const arrays = cudaArrays()
    if ("why" in arrays) throw new Error(arrays.why)
    const scatterAddRows = arrays.addon.scatterAddRows as unknown as (src: Float32Array, index: Int32Array, out: Float32Array, cols: number) => void
    const out = new Float32Array(0)
    expect(() => ops.gatherRows(new Float32Array(0), Int32Array.of(0, 3), out, 0)).not.toThrow()
    expect(() => scatterAddRows(new Float32Array(0), Int32Array.of(2, 1), out, 0)).not.toThrow()
    const cpu = new Float32Array(0)
    Cpu.gatherRows(new Float32Array(0), Int32Array.of(0, 3), cpu, 0)
    expect(out).toEqual(cpu)
    expect(() => ops.gatherRows(new Float32Array(2), Int32Array.of(0), new Float32Array(0), 0)).toThrow(RangeError)
    expect(() => ops.gatherRows(new Float32Array(4), Int32Array.of(0), new Float32Array(3), 2)).toThrow(RangeError)
  })

  test.runIf(!built)("not built: deviceInfo and axpy throw AddonLoadError", () => {
    expect(() => Cuda.deviceInfo()).toThrow(Addon.AddonLoadError)
    expect(() => Cuda.axpy(1, new Float32Array(1), new Float32Array(1))).toThrow(Addon.AddonLoadError)
  })
})

describe.runIf(status.available)("CUDA axpy on the device", () => {
  test("matches the JS reference within 1e-6 and the CPU FMA path bit for bit", () => {
    const cpuFuses = Cpu.activeIsa() !== "scalar"
    fc.assert(
      fc.property(axpyCase(f32), ({ a, xs, ys, px, py }) => {
        const x = place(Float32Array, xs, px)
        const y = place(Float32Array, ys, py)
        const cpu = Float32Array.from(ys)
        Cpu.axpy(a, Float32Array.from(xs), cpu)
        const want = axpyF32Ref(a, xs, ys)
        Cuda.axpy(a, x, y)
        for (let i = 0; i < want.length; i++) {
          const got = y[i] ?? NaN
          if (!f32Close(got, want[i] ?? NaN, a, xs[i] ?? NaN, ys[i] ?? NaN)) {
            throw new Error(`element ${i}: device ${got}, reference ${want[i]}`)
          }
          // Both sides do one fused multiply-add in float32: identical bits.
          if (cpuFuses && !Object.is(got, cpu[i])) throw new Error(`element ${i}: device ${got}, cpu ${cpu[i]}`)
        }
      }),
      { numRuns: 60 },
    )
  })

  test("a vector longer than one grid (grid-stride loop), on a SharedArrayBuffer", () => {
    const n = 65536 * 256 + 12345
    const x = new Float32Array(new SharedArrayBuffer(n * 4))
    const y = new Float32Array(n)
    for (let i = 0; i < n; i++) {
      x[i] = (i % 1000) / 7
      y[i] = (i % 313) - 100
    }
    const cpu = Float32Array.from(y)
    Cpu.axpy(0.5, x, cpu)
    Cuda.axpy(0.5, x, y)
    let worst = 0
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs((y[i] ?? 0) - (cpu[i] ?? 0)))
    expect(worst).toBeLessThanOrEqual(1e-6 * 300)
  })
})

describe.runIf(status.available)("device memory through the caching allocator", () => {
  test("bytes copied in come back out; freed blocks are reused on their stream; the counters add up", () => {
    const memory = Cuda.deviceMemory()
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3 << 20 }), { minLength: 1, maxLength: 12 }), (sizes) => {
        const before = memory.stats()
        const blocks = sizes.map((n) => {
          const host = new Uint8Array(n).map((_, i) => (i * 7 + n) & 255)
          const at = memory.allocate(n, 0) as number
          memory.copyIn(at, host, 0)
          return { at, host }
        })
        for (const { at, host } of blocks) {
          const back = new Uint8Array(host.length)
          memory.copyOut(at, back, 0)
          expect(back).toEqual(host)
        }
        for (const { at } of blocks) expect(memory.free(at)).toBe(true)
        const after = memory.stats()
        expect(after.allocatedBytes).toBe(before.allocatedBytes)
        // Freed on its own stream, a block serves the next request of its size with no cudaMalloc.
        for (const n of sizes) {
          memory.free(memory.allocate(n, 0) as number)
          const cached = memory.stats().deviceAllocations
          memory.free(memory.allocate(n, 0) as number)
          expect(memory.stats().deviceAllocations).toBe(cached)
        }
      }),
      { numRuns: 20 },
    )
  })

  test("a copy longer than its block, or to an address that is not a block, is a RangeError", () => {
    const memory = Cuda.deviceMemory()
    const at = memory.allocate(1000, 0) as number
    expect(() => memory.copyIn(at, new Uint8Array(4096), 0)).toThrow(RangeError)
    expect(() => memory.copyOut(at + 1, new Uint8Array(8), 0)).toThrow(/not a live device block/)
    memory.free(at)
  })
})
