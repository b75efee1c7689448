// The CUDA attention kernels (cuda/src/kernels/attention_cuda.h) and their CPU twin, the CPU's
// scalar path (attention.cc's float64 references), as kernelTwins.ts's cases: random GQA shapes,
// causal or not, positions default, shared by the batch or per sequence (some queries then see
// no key), lse in float32 or float64. Bit for bit on the host (the emulator runs the kernels'
// per-element functions), within one float ulp on the device (its exp and log).
import fc from "fast-check"
import { expect } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import type { AttentionSizes } from "../tensor/attentionSizes.js"
import { beyondOneUlp, big, device, type Executor, emulate, expectSame, expectTwin, floats, type Part, type Runnable, runnable, scalar, type Twin } from "./kernelTwins.js"

interface AttentionCase extends AttentionSizes {
  readonly causal: boolean
  readonly positions: "default" | "shared" | "per-sequence"
  readonly lse64: boolean
  readonly seed: number
}

const cases = (on: Executor): fc.Arbitrary<AttentionCase> =>
  fc.record({
    b: fc.integer({ min: 1, max: 2 }),
    sq: fc.integer({ min: 1, max: big(on, 9, 40) }),
    sk: fc.integer({ min: 1, max: big(on, 9, 40) }),
    hkv: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 3 }),
    d: fc.integer({ min: 1, max: big(on, 12, 80) }),
    dv: fc.integer({ min: 1, max: big(on, 12, 80) }),
    causal: fc.boolean(),
    positions: fc.constantFrom("default" as const, "shared" as const, "per-sequence" as const),
    lse64: fc.boolean(),
    seed: fc.integer(),
  })

/** The case's tensors and shape (positions from the seed: shuffled, so some queries see no key). */
const inputs = (c: AttentionCase) => {
  const hq = c.hkv * c.group
  const positions = (s: number, salt: number) => {
    if (c.positions === "default") return undefined
    const n = c.positions === "shared" ? s : c.b * s
    return Int32Array.from(floats(n, c.seed + salt), (v) => Math.floor((v + 4) * 2) - 2)
  }
  const shape: Cpu.AttentionShape = {
    b: c.b,
    sq: c.sq,
    sk: c.sk,
    hq,
    hkv: c.hkv,
    d: c.d,
    dv: c.dv,
    causal: c.causal,
    queryPositions: positions(c.sq, 7),
    keyPositions: positions(c.sk, 8),
  }
  const q = floats(c.b * c.sq * hq * c.d, c.seed)
  const k = floats(c.b * c.sk * c.hkv * c.d, c.seed + 1)
  const v = floats(c.b * c.sk * c.hkv * c.dv, c.seed + 2)
  return { shape, q, k, v, rows: c.b * hq * c.sq }
}

/** The emulator's request header of a case: the binding's dims, then the positions' lengths. */
const header = (s: Cpu.AttentionShape, extra: ReadonlyArray<number> = []) => {
  const [b, sq, sk, hq, hkv, d, dv, scale, causal, qpos, kpos] = Cpu.attentionDims(s)
  return Float64Array.of(b, sq, sk, hq, hkv, d, dv, Math.fround(scale), causal ? 1 : 0, qpos?.length ?? 0, kpos?.length ?? 0, ...extra)
}

const positionParts = (s: Cpu.AttentionShape): Array<Part> => [s.queryPositions ?? new Int32Array(0), s.keyPositions ?? new Int32Array(0)]

const forward: Twin<AttentionCase> = {
  name: "attention: the CPU's float64 reference (out and lse; GQA, causal, positions)",
  cases,
  check: (c, on) => {
    const { shape, q, k, v, rows } = inputs(c)
    const out = new Float32Array(rows * c.dv)
    const lse = new Float64Array(rows)
    scalar(() => Cpu.attention({ ...shape, q, k, v, out, lse }))
    if (on === "host") {
      const [gotOut, gotLse] = emulate(
        "attention",
        [header(shape), q, k, v, ...positionParts(shape)],
        [
          ["f32", rows * c.dv],
          ["f64", rows],
        ],
      )
      expectSame(gotOut as Part, out)
      expectSame(gotLse as Part, lse)
      return
    }
    const gotOut = new Float32Array(rows * c.dv)
    const gotLse = c.lse64 ? new Float64Array(rows) : new Float32Array(rows)
    device().attention({ ...shape, q, k, v, out: gotOut, lse: gotLse })
    expectTwin(gotOut, out, on)
    // lse within one float ulp (as float32) of the reference's.
    expect(beyondOneUlp(Float32Array.from(gotLse), Float32Array.from(lse))).toBe(0)
  },
}

const backward: Twin<AttentionCase> = {
  name: "attentionBackward: the CPU's float64 reference (dq, dk, dv; lse float32 or float64)",
  cases,
  check: (c, on) => {
    const { shape, q, k, v, rows } = inputs(c)
    const out = new Float32Array(rows * c.dv)
    const lse64 = new Float64Array(rows)
    scalar(() => Cpu.attention({ ...shape, q, k, v, out, lse: lse64 }))
    const lse = c.lse64 ? lse64 : Float32Array.from(lse64)
    const gradOut = floats(rows * c.dv, c.seed + 3)
    const want = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
    scalar(() => Cpu.attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...want }))
    if (on === "host") {
      const got = emulate(
        "attention_backward",
        [header(shape, [c.lse64 ? 0 : 1]), q, k, v, out, gradOut, lse, ...positionParts(shape)],
        [
          ["f32", q.length],
          ["f32", k.length],
          ["f32", v.length],
        ],
      )
      expectSame(got[0] as Part, want.gradQ)
      expectSame(got[1] as Part, want.gradK)
      expectSame(got[2] as Part, want.gradV)
      return
    }
    const got = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
    device().attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...got })
    expectTwin(got.gradQ, want.gradQ, on)
    expectTwin(got.gradK, want.gradK, on)
    expectTwin(got.gradV, want.gradV, on)
  },
}

/** The attention twins, for both executors. */
export const attentionTwins: ReadonlyArray<Runnable> = [runnable(forward), runnable(backward)]
