// The CUDA kernels (cuda/src/kernels/ops_cuda.h) against their CPU twins: the twins of
// kernelTwins.ts and dispatchTwins.ts (gather, the MoE permute, unpermute and its backward, AdamW,
// RoPE, the RMSNorm backward bit for bit; SwiGLU and its backward, the cross-entropy rows and the router within one float ulp;
// gatedSinksTwins.ts: the gated activation and its backward, the attention sinks' fold and gradient), and
// RMSNorm's forward (a block reduction) within one ulp; the cuBLAS GEMMs (dlopen'ed,
// cuda/src/cublas_binding.cc) within fp32 rounding of the float64 product, grouped = per expert. Where no GPU runs (here, CI)
// only the argument checks and the "no device" path run; scripts/device-check runs the rest on
// the GPU machine (and PLEAT_REQUIRE_GPU=1 makes a missing device fail instead).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Addon from "../../src/native/Addon.js"
import * as Cpu from "../../src/native/Cpu.js"
import * as Cuda from "../../src/native/Cuda.js"
import * as CudaTiming from "../../src/native/CudaTiming.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import { attentionTwins } from "./attentionTwins.js"
import { dispatchTwins } from "./dispatchTwins.js"
import { elementwiseTwins } from "./elementwiseTwins.js"
import { gatedSinksTwins } from "./gatedSinksTwins.js"
import { beyondOneUlp, floats, twins } from "./kernelTwins.js"

const built = Addon.isBuilt("pleat_cuda")
const status = Cuda.cudaStatus()

describe.runIf(built && !status.available)("CUDA kernels without a device", () => {
  test('every kernel checks its arguments first, then throws "no device:"', () => {
    const ops = Cuda.deviceOps()
    expect(() => ops.swiglu(new Float32Array(2), new Float32Array(3), new Float32Array(2))).toThrow(RangeError)
    expect(() => ops.gatherRows(new Float32Array(4), Int32Array.of(2), new Float32Array(2), 2)).toThrow(/index\[0\] = 2 is outside src's 2 rows/)
    expect(() => ops.swiglu(new Float32Array(2), new Float32Array(2), new Float32Array(2))).toThrow(/^no device: /)
    expect(() => ops.rmsnormRows(new Float32Array(4), new Float32Array(2), new Float32Array(4), undefined, 2, 2, 1e-6)).toThrow(/^no device: /)
    expect(() => ops.combineRows(new Float32Array(4), 2, Int32Array.of(0, 3), undefined, 2, 2, new Float32Array(4))).toThrow(/index\[1\] = 3 is not a token of 2/)
    expect(() => ops.combineRows(new Float32Array(4), 2, Int32Array.of(0, 1), undefined, 2, 2, new Float32Array(4))).toThrow(/^no device: /)
    // combineBackward refuses what CpuDispatch's refuses, by the same checks.
    const [g, w, r] = [new Float32Array(4), new Float32Array(2), new Float32Array(4)]
    expect(() => ops.combineBackward(g, Int32Array.of(0, 2), 2, w, r, new Float32Array(4), null)).toThrow(/index\[1\] = 2 is out of range/)
    expect(() => ops.combineBackward(g, Int32Array.of(0, 1), 2, w, r, null, new Float32Array(3))).toThrow(/gradWeights has 3 elements/)
    expect(() => ops.combineBackward(g, Int32Array.of(0, 1), 2, w, r, g, null)).toThrow(TypeError)
    expect(() => ops.combineBackward(g, Int32Array.of(0, 1), 2, w, r, new Float32Array(4), new Float32Array(2))).toThrow(/^no device: /)
    const dims = { b: 1, s: 2, heads: 1, d: 2, tableRows: 2 }
    expect(() => ops.ropeRotate(new Float32Array(4), new Float64Array(2), new Float64Array(2), new Float32Array(4), { ...dims, tableRows: 3 }, 1)).toThrow(/tableRows s or b \* s/)
    expect(() => ops.ropeRotate(new Float32Array(4), new Float64Array(2), new Float64Array(2), new Float32Array(4), dims, 1)).toThrow(/^no device: /)
    expect(() => ops.swigluBackward(new Float32Array(2), new Float32Array(2), new Float32Array(3), undefined, new Float32Array(2))).toThrow(RangeError)
    expect(() => ops.swigluBackward(new Float32Array(2), new Float32Array(2), new Float32Array(2), undefined, new Float32Array(2))).toThrow(/^no device: /)
    expect(() => ops.rmsnormBackward(new Float32Array(4), new Float32Array(2), new Float32Array(4), new Float64Array(1), 2, 2, undefined, undefined)).toThrow(/rstd rows/)
    expect(() => ops.rmsnormBackward(new Float32Array(4), new Float32Array(2), new Float32Array(4), new Float64Array(2), 2, 2, new Float32Array(4), undefined)).toThrow(
      /^no device: /,
    )
    // The gated activation and the attention sinks (cuda_gated_sinks_binding.cc).
    const f32 = (n: number) => new Float32Array(n)
    expect(() => ops.gatedActivation(f32(2), f32(3), f32(2), 1.702, 1, 7)).toThrow(/^gatedActivation: up has 3 elements, expected gate.length = 2/)
    expect(() => ops.gatedActivation(f32(2), f32(2), f32(2), 1.702, 1, "7" as unknown as number)).toThrow(TypeError)
    expect(() => ops.gatedActivation(f32(2), f32(2), f32(2), 1.702, 1, 7)).toThrow(/^no device: /)
    expect(() => ops.gatedActivation(f32(2), f32(2), f32(2), 1, 0, null)).toThrow(/^no device: /)
    expect(() => ops.gatedActivationBackward(f32(2), f32(2), f32(2), f32(1), null, 1.702, 1, 7)).toThrow(/^gatedActivationBackward: dGate has 1 elements/)
    expect(() => ops.gatedActivationBackward(f32(2), f32(2), new Float64Array(2) as unknown as Float32Array, null, f32(2), 1, 0, null)).toThrow(TypeError)
    const shared = f32(2)
    expect(() => ops.gatedActivationBackward(shared, f32(2), f32(2), shared, null, 1, 0, null)).toThrow(/dGate and gate must not overlap/)
    expect(() => ops.gatedActivationBackward(f32(2), f32(2), f32(2), f32(2), null, 1.702, 1, 7)).toThrow(/^no device: /)
    // b 1, sq 2, hq 3, dv 2: out and g 12 elements, lse 6, sinks and dz 3.
    expect(() => ops.attentionSinksFold(f32(12), new Float64Array(5), f32(3), 1, 2, 3, 2)).toThrow(/^attentionSinksFold: lse has 5 elements, expected b \* hq \* sq = 6/)
    expect(() => ops.attentionSinksFold(f32(11), new Float64Array(6), f32(3), 1, 2, 3, 2)).toThrow(RangeError)
    expect(() => ops.attentionSinksFold(f32(12), f32(6) as unknown as Float64Array, f32(3), 1, 2, 3, 2)).toThrow(TypeError)
    expect(() => ops.attentionSinksFold(f32(12), new Float64Array(6), f32(3), 1, 2, 3, 2)).toThrow(/^no device: /)
    expect(() => ops.attentionSinksGradient(f32(12), f32(12), new Float64Array(6), f32(3), 1, 2, 3, 2, f32(2))).toThrow(
      /^attentionSinksGradient: dz has 2 elements, expected hq = 3/,
    )
    expect(() => ops.attentionSinksGradient(f32(12), f32(12), new Float64Array(6), f32(2), 1, 2, 3, 2, f32(3))).toThrow(/sinks has 2 elements/)
    expect(() => ops.attentionSinksGradient(f32(12), f32(12), new Float64Array(6), f32(3), 1, 2, 3, 2, f32(3))).toThrow(/^no device: /)
    expect(() => ops.gemm(new Float32Array(3), new Float32Array(4), new Float32Array(4), 2, 2, 2)).toThrow(/a needs m \* k elements/)
    expect(() => ops.gemm(new Float32Array(4), new Float32Array(4), new Float32Array(4), 2, 2, 2, true)).toThrow(/^no device: /)
    expect(() => ops.groupedGemm(new Float32Array(4), new Float32Array(8), new Float32Array(4), Int32Array.of(3, -1), 2, 2)).toThrow(/counts\[1\] = -1 is negative/)
    expect(() => ops.groupedGemm(new Float32Array(4), new Float32Array(8), new Float32Array(4), Int32Array.of(1, 1), 2, 2)).toThrow(/^no device: /)
    // The device-resident timings: their shapes checked, then the device asked for.
    const timing = CudaTiming.timings()
    expect(() => timing.permute({ tokens: 8, hidden: 4, experts: 2, topk: 3 }, 1)).toThrow(/1 <= topk <= experts/)
    expect(() => timing.permute({ tokens: 8, hidden: 4, experts: 2, topk: 2 }, 1)).toThrow(/^no device: /)
    expect(() => timing.moeLayer({ tokens: 8, hidden: 4, ffn: 6, experts: 65, topk: 2 }, 1)).toThrow(/topk <= experts <= 64/)
    expect(() => timing.moeLayer({ tokens: 8, hidden: 4, ffn: 6, experts: 4, topk: 2 }, 0)).toThrow(/reps >= 1/)
    expect(() => timing.moeLayer({ tokens: 8, hidden: 4, ffn: 6, experts: 4, topk: 2 }, 1)).toThrow(/^no device: /)
    const layer = { tokens: 2, hidden: 3, ffn: 4, experts: 2, topk: 1 }
    const inputs = { x: new Float32Array(6), wr: new Float32Array(6), wg: new Float32Array(24), wu: new Float32Array(24), wd: new Float32Array(24), dy: new Float32Array(6) }
    expect(() => timing.runMoeLayer({ ...inputs, wd: new Float32Array(23) }, layer)).toThrow(/wd must be a Float32Array of 24 elements/)
    expect(() => timing.runMoeLayer(inputs, layer)).toThrow(/^no device: /)
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

  // The kernels with a CPU twin (kernelTwins.ts; the host emulation runs the same cases).
  for (const twin of [...twins, ...dispatchTwins, ...elementwiseTwins, ...attentionTwins, ...gatedSinksTwins]) test(twin.name, () => twin.run("device", 20))

  test("rmsnormRows within one ulp of the CPU's scalar kernel (float64 rounded once, as the device), rstd within (cols + 2) double ulps relative (its sum of squares in another order)", () => {
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
          // Positive terms summed in any order: within (cols - 1) u of the sum; the sqrt and the
          // division add ~2 u (u = 2^-53).
          rc.forEach((v, i) => expect(Math.abs((rg[i] as number) - v)).toBeLessThanOrEqual((cols + 2) * 2 ** -53 * v))
        }),
        { numRuns: 30 },
      )
    } finally {
      Cpu.setIsa(before)
    }
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
