// The CUDA kernels of cuda/src/kernels/gated_sinks_cuda.h and their twins, as kernelTwins.ts's
// cases ("host": their per-element functions, gated_sinks_element.h, run by pleat_kernel_emulation;
// "device": the kernels on a GPU through Cuda.deviceOps):
// - gatedActivation and its backward against the CPU kernel's scalar path (CpuOptional's
//   gatedActivationKernels pinned to the scalar ISA: float64 rounded once, as the device): alpha 1
//   and 1.702, offset 0 and 1, clamped (limits 7 and 1.5) or not, with values beyond the limit,
//   exactly at +-limit and NaN. Bit for bit on the host (std::exp is the CPU kernel's), within one
//   float ulp on the device (its exp's last bit).
// - The attention sinks' fold and gradient against tensor/kernels/AttentionSinks.ts (fold, and
//   gradient rounded to float32): rows that see no key (lse -inf, out zero, so delta 0: skipped),
//   dv 1 included. JS's Math.exp / Math.log and C++'s std::exp / std::log (or the device's) may
//   differ in a double's last bit, so on both executors lse is compared within a few float64 ulps
//   (8 eps (1 + |lse|)), and out and dz within one float ulp. On the device the gradient runs on
//   the reference's folded out and lse, so only its own exp's last bit can differ.
import fc from "fast-check"
import { expect } from "vitest"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import * as AttentionSinks from "../../src/tensor/kernels/AttentionSinks.js"
import { beyondOneUlp, big, device, emulate, expectTwin, floats, type Runnable, runnable, scalar, type Twin } from "./kernelTwins.js"

interface GatedCase {
  readonly n: number
  readonly alpha: number
  readonly offset: number
  readonly limit: number | undefined
  /** Which gradients the device computes: 0 dGate, 1 dUp, 2 both. */
  readonly which: number
  readonly seed: number
}

/** gate, up and grad: values past the limit, exactly at +-limit (7 when unclamped) and NaN among them. */
const gatedInputs = (c: GatedCase) => {
  const at = c.limit ?? 7
  const gate = floats(c.n, c.seed).map((v) => v * 3)
  const up = floats(c.n, c.seed + 1).map((v) => v * 3)
  const grad = floats(c.n, c.seed + 2)
  for (let i = 0; i < c.n; i++) {
    const kind = (i * 7919 + (c.seed >>> 0)) % 23
    if (kind === 0) gate[i] = at
    else if (kind === 1) gate[i] = -at
    else if (kind === 2) up[i] = at
    else if (kind === 3) up[i] = -at
    else if (kind === 4) gate[i] = Number.NaN
    else if (kind === 5) up[i] = Number.NaN
  }
  return { gate, up, grad }
}

const gatedActivation: Twin<GatedCase> = {
  name: "gatedActivation and its backward: the CPU kernel's scalar path (alpha, offset, clamped or not; +-limit, beyond it and NaN)",
  cases: (on) =>
    fc.record({
      n: fc.integer({ min: 1, max: big(on, 3000, 1 << 20) }),
      alpha: fc.constantFrom(1, 1.702),
      offset: fc.constantFrom(0, 1),
      limit: fc.constantFrom(undefined, 7, 1.5),
      which: fc.integer({ min: 0, max: 2 }),
      seed: fc.integer(),
    }),
  check: (c, on) => {
    const cpu = CpuOptional.gatedActivationKernels()
    if (cpu === undefined) throw new Error("the CPU addon's gatedActivation kernels are not built")
    const { n, alpha, offset, limit } = c
    const { gate, up, grad } = gatedInputs(c)
    const glu = { alpha, offset, limit }
    const want = { out: new Float32Array(n), dGate: new Float32Array(n), dUp: new Float32Array(n) }
    scalar(() => {
      cpu.forward(gate, up, want.out, glu)
      cpu.backward(gate, up, grad, want.dGate, want.dUp, glu)
    })
    if (on === "host") {
      const [out, dGate, dUp] = emulate(
        "gated_activation",
        [Float64Array.of(n, alpha, offset, limit ?? 0, limit === undefined ? 0 : 1), gate, up, grad],
        [
          ["f32", n],
          ["f32", n],
          ["f32", n],
        ],
      )
      expectTwin(out as Float32Array, want.out, on)
      expectTwin(dGate as Float32Array, want.dGate, on)
      expectTwin(dUp as Float32Array, want.dUp, on)
      return
    }
    const out = new Float32Array(n)
    device().gatedActivation(gate, up, out, alpha, offset, limit ?? null)
    expectTwin(out, want.out, on)
    const dGate = c.which !== 1 ? new Float32Array(n) : null
    const dUp = c.which !== 0 ? new Float32Array(n) : null
    device().gatedActivationBackward(gate, up, grad, dGate, dUp, alpha, offset, limit ?? null)
    if (dGate !== null) expectTwin(dGate, want.dGate, on)
    if (dUp !== null) expectTwin(dUp, want.dUp, on)
  },
}

interface SinksCase extends AttentionSinks.SinkDims {
  readonly seed: number
}

/** lse within a few float64 ulps (exp's and log's last bits: JS's against C++'s or the device's). */
const expectNearLse = (got: Float64Array, want: Float64Array) => {
  expect(got.length).toBe(want.length)
  const far = want.filter((w, i) => !(Math.abs((got[i] as number) - w) <= 8 * Number.EPSILON * (1 + Math.abs(w)))).length
  expect(far).toBe(0)
}

const attentionSinks: Twin<SinksCase> = {
  name: "attention sinks: fold (out within one float ulp, lse within a few float64 ulps) and gradient (dz within one float ulp) of AttentionSinks.ts, rows without keys and dv 1 included",
  cases: (on) =>
    fc.record({
      b: fc.integer({ min: 1, max: 3 }),
      sq: fc.integer({ min: 1, max: big(on, 20, 300) }),
      hq: fc.integer({ min: 1, max: big(on, 4, 8) }),
      dv: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: big(on, 40, 300) })),
      seed: fc.integer(),
    }),
  check: (c, on) => {
    const { b, sq, hq, dv, seed } = c
    const rows = b * hq * sq
    const out = floats(rows * dv, seed)
    const g = floats(rows * dv, seed + 1)
    const sinks = floats(hq, seed + 2)
    // Forward row log-sum-exps (not all float32 values), and rows that saw no key: lse -inf, out zero.
    const lse = Float64Array.from(floats(rows, seed + 3), (v, r) => v * 2 + r * 2 ** -45)
    for (let bi = 0; bi < b; bi++)
      for (let h = 0; h < hq; h++)
        for (let i = 0; i < sq; i++) {
          const row = (bi * hq + h) * sq + i
          if ((row * 7919 + (seed >>> 0)) % 5 !== 0) continue
          lse[row] = Number.NEGATIVE_INFINITY
          out.fill(0, ((bi * sq + i) * hq + h) * dv, ((bi * sq + i) * hq + h + 1) * dv)
        }
    const want = { out: Float32Array.from(out), lse: Float64Array.from(lse) }
    AttentionSinks.fold(want.out, want.lse, sinks, c)
    const wantDz = Float32Array.from(AttentionSinks.gradient(g, want.out, want.lse, sinks, c))
    if (on === "host") {
      const [gotOut, gotLse, gotDz] = emulate(
        "attention_sinks",
        [Float64Array.of(b, sq, hq, dv), out, lse, sinks, g],
        [
          ["f32", rows * dv],
          ["f64", rows],
          ["f32", hq],
        ],
      )
      expect(beyondOneUlp(gotOut as Float32Array, want.out)).toBe(0)
      expectNearLse(gotLse as Float64Array, want.lse)
      expect(beyondOneUlp(gotDz as Float32Array, wantDz)).toBe(0)
      return
    }
    const got = { out: Float32Array.from(out), lse: Float64Array.from(lse), dz: new Float32Array(hq) }
    device().attentionSinksFold(got.out, got.lse, sinks, b, sq, hq, dv)
    expect(beyondOneUlp(got.out, want.out)).toBe(0)
    expectNearLse(got.lse, want.lse)
    device().attentionSinksGradient(g, want.out, want.lse, sinks, b, sq, hq, dv, got.dz)
    expect(beyondOneUlp(got.dz, wantDz)).toBe(0)
  },
}

/** The gated activation's and the attention sinks' twins, for both executors. */
export const gatedSinksTwins: ReadonlyArray<Runnable> = [runnable(gatedActivation), runnable(attentionSinks)]
