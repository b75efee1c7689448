// The first CUDA kernels (cuda/src/kernels/ops_cuda.h) against their CPU twins: gather exact,
// AdamW, the MoE unpermute, RoPE and the RMSNorm backward the same bits, RMSNorm and SwiGLU
// (forward, and SwiGLU's backward) within one float ulp; the cuBLAS GEMMs (dlopen'ed,
// cuda/src/cublas_binding.cc) within fp32 rounding of the float64 product, grouped = per expert. Where no GPU runs (here, CI)
// only the argument checks and the "no device" path run; scripts/device-check runs the rest on
// the GPU machine (and PLEAT_REQUIRE_GPU=1 makes a missing device fail instead).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Addon from "../../src/native/Addon.js"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuCrossEntropy from "../../src/native/CpuCrossEntropy.js"
import * as CpuDispatch from "../../src/native/CpuDispatch.js"
import * as CpuElementwise from "../../src/native/CpuElementwise.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import * as Cuda from "../../src/native/Cuda.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import { expected, routerCases } from "./routerCases.js"

const built = Addon.isBuilt("pleat_cuda")
const status = Cuda.cudaStatus()

const floats = (n: number, seed: number) => {
  let s = seed >>> 0 || 1
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 8 - 4)
}

/** Elements whose float32 values are more than one ulp apart (two NaNs, whatever their bits, agree). */
const beyondOneUlp = (a: Float32Array, b: Float32Array): number => {
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length)
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length)
  let n = 0
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue
    if (Math.abs((ia[i] as number) - (ib[i] as number)) > 1) n++
  }
  return n
}

describe.runIf(built && !status.available)("CUDA kernels without a device", () => {
  test('every kernel checks its arguments first, then throws "no device:"', () => {
    const ops = Cuda.deviceOps()
    expect(() => ops.swiglu(new Float32Array(2), new Float32Array(3), new Float32Array(2))).toThrow(RangeError)
    expect(() => ops.gatherRows(new Float32Array(4), Int32Array.of(2), new Float32Array(2), 2)).toThrow(/index\[0\] = 2 is outside src's 2 rows/)
    expect(() => ops.swiglu(new Float32Array(2), new Float32Array(2), new Float32Array(2))).toThrow(/^no device: /)
    expect(() => ops.rmsnormRows(new Float32Array(4), new Float32Array(2), new Float32Array(4), undefined, 2, 2, 1e-6)).toThrow(/^no device: /)
    expect(() => ops.combineRows(new Float32Array(4), 2, Int32Array.of(0, 3), undefined, 2, 2, new Float32Array(4))).toThrow(/index\[1\] = 3 is not a token of 2/)
    expect(() => ops.combineRows(new Float32Array(4), 2, Int32Array.of(0, 1), undefined, 2, 2, new Float32Array(4))).toThrow(/^no device: /)
    const dims = { b: 1, s: 2, heads: 1, d: 2, tableRows: 2 }
    expect(() => ops.ropeRotate(new Float32Array(4), new Float64Array(2), new Float64Array(2), new Float32Array(4), { ...dims, tableRows: 3 }, 1)).toThrow(/tableRows s or b \* s/)
    expect(() => ops.ropeRotate(new Float32Array(4), new Float64Array(2), new Float64Array(2), new Float32Array(4), dims, 1)).toThrow(/^no device: /)
    expect(() => ops.swigluBackward(new Float32Array(2), new Float32Array(2), new Float32Array(3), undefined, new Float32Array(2))).toThrow(RangeError)
    expect(() => ops.swigluBackward(new Float32Array(2), new Float32Array(2), new Float32Array(2), undefined, new Float32Array(2))).toThrow(/^no device: /)
    expect(() => ops.rmsnormBackward(new Float32Array(4), new Float32Array(2), new Float32Array(4), new Float64Array(1), 2, 2, undefined, undefined)).toThrow(/rstd rows/)
    expect(() => ops.rmsnormBackward(new Float32Array(4), new Float32Array(2), new Float32Array(4), new Float64Array(2), 2, 2, new Float32Array(4), undefined)).toThrow(
      /^no device: /,
    )
    expect(() => ops.gemm(new Float32Array(3), new Float32Array(4), new Float32Array(4), 2, 2, 2)).toThrow(/a needs m \* k elements/)
    expect(() => ops.gemm(new Float32Array(4), new Float32Array(4), new Float32Array(4), 2, 2, 2, true)).toThrow(/^no device: /)
    expect(() => ops.groupedGemm(new Float32Array(4), new Float32Array(8), new Float32Array(4), Int32Array.of(3, -1), 2, 2)).toThrow(/counts\[1\] = -1 is negative/)
    expect(() => ops.groupedGemm(new Float32Array(4), new Float32Array(8), new Float32Array(4), Int32Array.of(1, 1), 2, 2)).toThrow(/^no device: /)
  })

  test("loadCublas says why a library does not load", () => {
    const r = Cuda.loadCublas("/nonexistent/libcublas.so.13")
    expect(r.loaded).toBe(false)
    if (!r.loaded) expect(r.error).toMatch(/^cannot load \/nonexistent\/libcublas\.so\.13: /)
  })
})

describe.runIf(status.available)("CUDA kernels against the CPU", () => {
  const ops = () => Cuda.deviceOps()
  const sizes = fc.record({ rows: fc.integer({ min: 1, max: 300 }), cols: fc.integer({ min: 1, max: 2100 }), seed: fc.integer() })

  test("gatherRows equals the CPU's exactly", () => {
    fc.assert(
      fc.property(sizes, ({ rows, cols, seed }) => {
        const src = floats(rows * cols, seed)
        const index = Int32Array.from({ length: rows + 3 }, (_, i) => ((i * 7919 + seed) % rows >= 0 ? (i * 7919 + Math.abs(seed)) % rows : 0))
        const cpu = new Float32Array(index.length * cols)
        const gpu = new Float32Array(index.length * cols)
        Cpu.gatherRows(src, index, cpu, cols)
        ops().gatherRows(src, index, gpu, cols)
        expect(gpu).toEqual(cpu)
      }),
      { numRuns: 30 },
    )
  })

  test("rmsnormRows within one ulp of the CPU's scalar kernel (float64 rounded once, as the device), rstd within 1e-15 relative", () => {
    const before = Cpu.activeIsa()
    try {
      Cpu.setIsa("scalar")
      fc.assert(
        fc.property(sizes, ({ rows, cols, seed }) => {
          const x = floats(rows * cols, seed)
          const w = floats(cols, seed + 1)
          const [cpu, gpu] = [new Float32Array(rows * cols), new Float32Array(rows * cols)]
          const [rc, rg] = [new Float64Array(rows), new Float64Array(rows)]
          Cpu.rmsnormRows(x, w, cpu, rc, rows, cols, 1e-6)
          ops().rmsnormRows(x, w, gpu, rg, rows, cols, 1e-6)
          expect(beyondOneUlp(gpu, cpu)).toBe(0)
          rc.forEach((v, i) => expect(Math.abs((rg[i] as number) - v)).toBeLessThanOrEqual(1e-15 * v))
        }),
        { numRuns: 30 },
      )
    } finally {
      Cpu.setIsa(before)
    }
  })

  test("swiglu within one ulp of the CPU's scalar kernel (float64 rounded once, as the device; the vector paths round in float32)", () => {
    const before = Cpu.activeIsa()
    try {
      Cpu.setIsa("scalar")
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.integer(), (n, seed) => {
          const [gate, up] = [floats(n, seed), floats(n, seed + 1)]
          const [cpu, gpu] = [new Float32Array(n), new Float32Array(n)]
          Cpu.swiglu(gate, up, cpu)
          ops().swiglu(gate, up, gpu)
          expect(beyondOneUlp(gpu, cpu)).toBe(0)
        }),
        { numRuns: 20 },
      )
    } finally {
      Cpu.setIsa(before)
    }
  })

  test("swigluBackward within one ulp of the CPU's, either gradient alone or both", () => {
    const cpuBackward = CpuOptional.swigluBackwardKernel()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.integer(), fc.integer({ min: 0, max: 2 }), (n, seed, which) => {
        const [gate, up, grad] = [floats(n, seed), floats(n, seed + 1), floats(n, seed + 2)]
        const wantGate = which !== 1
        const wantUp = which !== 0
        const cpu = { g: wantGate ? new Float32Array(n) : undefined, u: wantUp ? new Float32Array(n) : undefined }
        const gpu = { g: wantGate ? new Float32Array(n) : undefined, u: wantUp ? new Float32Array(n) : undefined }
        cpuBackward?.(gate, up, grad, cpu.g, cpu.u)
        ops().swigluBackward(gate, up, grad, gpu.g, gpu.u)
        if (cpu.g !== undefined && gpu.g !== undefined) expect(beyondOneUlp(gpu.g, cpu.g)).toBe(0)
        if (cpu.u !== undefined && gpu.u !== undefined) expect(beyondOneUlp(gpu.u, cpu.u)).toBe(0)
      }),
      { numRuns: 20 },
    )
  })

  test("rmsnormBackward equals the CPU kernel bit for bit (dx, dw, either alone)", () => {
    const cpuBackward = CpuOptional.rmsnormBackwardKernel()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 2100 }), fc.integer(), fc.integer({ min: 0, max: 2 }), (rows, cols, seed, which) => {
        const [x, w, g] = [floats(rows * cols, seed), floats(cols, seed + 1), floats(rows * cols, seed + 2)]
        const rstd = Float64Array.from(floats(rows, seed + 3), (v) => 1 / (1 + Math.abs(v)))
        const wantDx = which !== 1
        const wantDw = which !== 0
        const cpu = { dx: wantDx ? new Float32Array(rows * cols) : undefined, dw: wantDw ? new Float64Array(cols) : undefined }
        const gpu = { dx: wantDx ? new Float32Array(rows * cols) : undefined, dw: wantDw ? new Float64Array(cols) : undefined }
        cpuBackward?.(x, w, g, rstd, rows, cols, cpu.dx, cpu.dw)
        ops().rmsnormBackward(x, w, g, rstd, rows, cols, gpu.dx, gpu.dw)
        expect(gpu).toEqual(cpu)
      }),
      { numRuns: 20 },
    )
  })

  test("cross-entropy row kernels: maxima exact, sums within 1e-14, gradients within one ulp of the CPU's", () => {
    const cpu = CpuCrossEntropy.crossEntropyKernels()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 5000 }), fc.integer(), (rows, cols, seed) => {
        const x = floats(rows * cols, seed).map((v) => v * 3)
        if (cols > 3) x[(seed >>> 0) % x.length] = Number.NaN // a NaN row: NaN through max, sum and grad
        const targets = Int32Array.from({ length: rows }, (_, r) => (r % 5 === 0 ? -1 : (r * 7919 + (seed >>> 0)) % (cols + 3)))
        const want = { max: new Float64Array(rows), sum: new Float64Array(rows), d: new Float32Array(rows * cols) }
        const got = { max: new Float64Array(rows), sum: new Float64Array(rows), d: new Float32Array(rows * cols) }
        cpu?.rowMax(x, rows, cols, want.max)
        ops().crossEntropy.rowMax(x, rows, cols, got.max)
        expect(got.max).toEqual(want.max)
        cpu?.rowSumExp(x, rows, cols, want.max, want.sum)
        ops().crossEntropy.rowSumExp(x, rows, cols, want.max, got.sum)
        got.sum.forEach((v, r) =>
          Number.isNaN(want.sum[r] as number) ? expect(v).toBeNaN() : expect(Math.abs(v - (want.sum[r] as number))).toBeLessThanOrEqual(1e-14 * (want.sum[r] as number)),
        )
        const logSum = want.sum.map((v, r) => (want.max[r] as number) + Math.log(v))
        cpu?.grad(x, rows, cols, logSum, targets, -1, 2, 0.25, want.d)
        ops().crossEntropy.grad(x, rows, cols, logSum, targets, -1, 2, 0.25, got.d)
        expect(beyondOneUlp(got.d, want.d)).toBe(0)
      }),
      { numRuns: 20 },
    )
  })

  test("router: Router.select's experts and probsFor's probs within one ulp, every mode, groups, bias, scaling", () => {
    fc.assert(
      fc.property(routerCases(300), (c) => {
        const want = expected(c)
        const [indices, probs] = [new Int32Array(c.tokens * c.spec.topk), new Float32Array(c.tokens * c.experts)]
        ops().router(c.logits, c, c.spec, indices, probs)
        expect(indices).toEqual(want.indices)
        expect(beyondOneUlp(probs, want.probs)).toBe(0)
      }),
      { numRuns: 30 },
    )
  })

  test("ropeRotate equals the CPU kernel bit for bit (shared or per-token tables, both signs)", () => {
    const cpuRope = CpuElementwise.ropeKernel()
    fc.assert(
      fc.property(
        fc.record({ b: fc.integer({ min: 1, max: 4 }), s: fc.integer({ min: 1, max: 300 }), heads: fc.integer({ min: 1, max: 8 }), half: fc.integer({ min: 1, max: 64 }) }),
        fc.boolean(),
        fc.constantFrom(1 as const, -1 as const),
        fc.integer(),
        ({ b, s, heads, half }, perToken, sign, seed) => {
          const d = 2 * half
          const tableRows = perToken ? b * s : s
          const x = floats(b * s * heads * d, seed)
          const cos = Float64Array.from(floats(tableRows * half, seed + 1), (v) => Math.cos(v))
          const sin = Float64Array.from(floats(tableRows * half, seed + 2), (v) => Math.sin(v))
          const [want, got] = [new Float32Array(x.length), new Float32Array(x.length)]
          const dims = { b, s, heads, d, tableRows }
          cpuRope?.(x, cos, sin, want, dims, sign)
          ops().ropeRotate(x, cos, sin, got, dims, sign)
          expect(got).toEqual(want)
        },
      ),
      { numRuns: 20 },
    )
  })

  test("combineRows (the MoE unpermute) equals the CPU dispatch kernel bit for bit", () => {
    const cpu = CpuDispatch.dispatchKernels()
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 1100 }),
        fc.boolean(),
        fc.integer(),
        (tokens, k, cols, weighted, seed) => {
          const n = tokens * k
          const index = Int32Array.from({ length: n }, (_, j) => (j * 7919 + Math.abs(seed)) % tokens)
          const rows = floats(n * cols, seed)
          const weights = weighted ? floats(n, seed + 1) : undefined
          const [want, got] = [new Float32Array(tokens * cols), new Float32Array(tokens * cols)]
          cpu?.combineRows(rows, cols, index, weights ?? null, null, tokens, cols, want)
          ops().combineRows(rows, cols, index, weights, tokens, cols, got)
          expect(got).toEqual(want)
        },
      ),
      { numRuns: 20 },
    )
  })

  test("adamw equals the CPU kernel bit for bit (weights and both moments)", () => {
    const cpuAdamw = CpuOptional.adamwKernel()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1 << 19 }), fc.integer(), fc.integer({ min: 1, max: 50 }), (n, seed, t) => {
        const s = { beta1: 0.9, beta2: 0.95, c1: 1 - 0.9 ** t, c2: 1 - 0.95 ** t, eps: 1e-8, lr: 3e-4, clip: 0.7, decay: 0.01 }
        const w = floats(n, seed)
        const g = floats(n, seed + 1)
        const m = floats(n, seed + 2).map((v) => v / 10)
        const v = floats(n, seed + 3).map((x) => (x * x) / 10)
        const cpu = { w: Float32Array.from(w), m: Float32Array.from(m), v: Float32Array.from(v) }
        const gpu = { w: Float32Array.from(w), m: Float32Array.from(m), v: Float32Array.from(v) }
        cpuAdamw?.(cpu.w, g, cpu.m, cpu.v, s)
        ops().adamw(gpu.w, g, gpu.m, gpu.v, s)
        expect([gpu.w, gpu.m, gpu.v]).toEqual([cpu.w, cpu.m, cpu.v])
      }),
      { numRuns: 20 },
    )
  })

  /** float64 product of row-major a[m, k] b[k, n], and per element the sum of |a_ik b_kj| (the error scale). */
  const reference = (a: Float32Array, b: Float32Array, m: number, n: number, k: number) => {
    const out = new Float64Array(m * n)
    const scale = new Float64Array(m * n)
    for (let i = 0; i < m; i++)
      for (let p = 0; p < k; p++) {
        const x = a[i * k + p] as number
        for (let j = 0; j < n; j++) {
          const y = b[p * n + j] as number
          out[i * n + j] = (out[i * n + j] as number) + x * y
          scale[i * n + j] = (scale[i * n + j] as number) + Math.abs(x * y)
        }
      }
    return { out, scale }
  }
  const bf16 = (x: Float32Array) => Float32Array.from(x, (v) => Bf16Round.roundValue(v))
  const cublas = () => {
    const loaded = Cuda.loadCublas(process.env.PLEAT_CUBLAS_LIB ?? "libcublas.so.13")
    if (!loaded.loaded) throw new Error(`cuBLAS did not load (set PLEAT_CUBLAS_LIB to the path pleat doctor --json shows as cublas.path): ${loaded.error}`)
  }

  test("gemm (cuBLAS) equals the float64 product within fp32 rounding, fp32 and bf16 inputs", () => {
    cublas()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 0, max: 300 }), fc.boolean(), fc.integer(), (m, n, k, half, seed) => {
        const a = floats(m * k, seed)
        const b = floats(k * n, seed + 1)
        const out = new Float32Array(m * n)
        const ms = ops().gemm(a, b, out, m, n, k, half)
        expect(ms).toBeGreaterThanOrEqual(0)
        const ref = half ? reference(bf16(a), bf16(b), m, n, k) : reference(a, b, m, n, k)
        out.forEach((v, i) => expect(Math.abs(v - (ref.out[i] as number))).toBeLessThanOrEqual(2 ** -20 * (ref.scale[i] as number) + 1e-30))
      }),
      { numRuns: 40 },
    )
  })

  test("groupedGemm equals one gemm per expert, empty experts included", () => {
    cublas()
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 64 }),
        fc.boolean(),
        fc.integer(),
        (counts, k, n, half, seed) => {
          const rows = counts.reduce((x, y) => x + y, 0)
          const a = floats(rows * k, seed)
          const b = floats(counts.length * k * n, seed + 1)
          const grouped = new Float32Array(rows * n)
          ops().groupedGemm(a, b, grouped, Int32Array.from(counts), k, n, half)
          let row = 0
          counts.forEach((r, e) => {
            const one = new Float32Array(r * n)
            if (r > 0) ops().gemm(a.subarray(row * k, (row + r) * k), b.subarray(e * k * n, (e + 1) * k * n), one, r, n, k, half)
            expect(grouped.subarray(row * n, (row + r) * n)).toEqual(one)
            row += r
          })
        },
      ),
      { numRuns: 30 },
    )
  })
})
