// The CUDA attention kernels (cuda/src/kernels/attention_cuda.h) and their CPU twin, the CPU's
// scalar path (attention.cc's float64 references), as kernelTwins.ts's cases: random GQA shapes,
// causal or not, positions default, shared by the batch or per sequence (some queries then see
// no key), query first keys none, shared or per sequence (document starts, attentionDocuments.ts;
// with the default positions the flash kernels skip the key tiles before a block's documents),
// lse in float32 or float64.
// - The element kernels (attention_element.h, what heads wider than 256 take): bit for bit on the
//   host (the emulator runs their per-element functions), within one float ulp on the device
//   (its exp and log), where the device cases have a head wider than 256 so that they run.
// - The flash-tiled kernels (attention_flash.h, every head up to 256 wide): float32 online
//   softmax, so within 1e-4 x (1 + the largest magnitude) of the float64 reference (measured:
//   3e-6 for out, 2e-5 for dk at up to 150 queries and keys; the gradients also 4e-6 x (d + dv)
//   where dout . v - delta cancels), lse within 1e-5 x (1 + |lse|), and
//   rows that see no key exactly: lse -inf, out and dq 0. On the host through the emulator (the
//   kernels' functions, block by block), on the device through the attention binding.
import fc from "fast-check"
import { expect } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import type { AttentionSizes } from "../tensor/attentionSizes.js"
import { type FirstKeysMode, firstKeysOf } from "./attentionDocuments.js"
import { beyondOneUlp, big, device, type Executor, emulate, expectSame, expectTwin, floats, type Part, type Runnable, runnable, scalar, type Twin } from "./kernelTwins.js"

interface AttentionCase extends AttentionSizes {
  readonly causal: boolean
  readonly positions: "default" | "shared" | "per-sequence"
  readonly firstKeys: FirstKeysMode
  readonly lse64: boolean
  readonly seed: number
}

/** Cases for the element kernels: on the device with a head wider than the tiled kernels take. */
const cases = (on: Executor): fc.Arbitrary<AttentionCase> =>
  on === "host"
    ? shapes(on, fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }))
    : fc.oneof(shapes(on, fc.integer({ min: 257, max: 290 }), fc.integer({ min: 1, max: 80 })), shapes(on, fc.integer({ min: 1, max: 80 }), fc.integer({ min: 257, max: 290 })))

/** Cases for the flash-tiled kernels: more rows than a block's 64, heads up to 256 wide. */
const flashCases = (on: Executor): fc.Arbitrary<AttentionCase> =>
  shapes(on, fc.integer({ min: 1, max: big(on, 40, 256) }), fc.integer({ min: 1, max: big(on, 40, 256) }), big(on, 140, 300))

/** Flash cases of documents packed into sequences past a block's 64 rows: default positions, Sq = Sk. */
const documentCases = (on: Executor): fc.Arbitrary<AttentionCase> =>
  fc
    .tuple(flashCases(on), fc.integer({ min: 65, max: big(on, 200, 600) }), fc.constantFrom("shared" as const, "batch" as const))
    .map(([c, s, firstKeys]) => ({ ...c, sq: s, sk: s, causal: true, positions: "default" as const, firstKeys }))

const shapes = (on: Executor, d: fc.Arbitrary<number>, dv: fc.Arbitrary<number>, rows = big(on, 9, 40)): fc.Arbitrary<AttentionCase> =>
  fc.record({
    b: fc.integer({ min: 1, max: 2 }),
    sq: fc.integer({ min: 1, max: rows }),
    sk: fc.integer({ min: 1, max: rows }),
    hkv: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 3 }),
    d,
    dv,
    causal: fc.boolean(),
    positions: fc.constantFrom("default" as const, "shared" as const, "per-sequence" as const),
    firstKeys: fc.constantFrom("none" as const, "shared" as const, "batch" as const),
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
  const queryPositions = positions(c.sq, 7)
  const keyPositions = positions(c.sk, 8)
  const draws = floats(1 + 4 * c.b * c.sq, c.seed + 9)
  let next = 0
  const draw = () => ((draws[next++ % draws.length] as number) + 4) / 8
  const shape: Cpu.AttentionShape = {
    b: c.b,
    sq: c.sq,
    sk: c.sk,
    hq,
    hkv: c.hkv,
    d: c.d,
    dv: c.dv,
    causal: c.causal,
    queryPositions,
    keyPositions,
    queryFirstKeys: firstKeysOf(draw, c.firstKeys, c.b, c.sq, c.sk, queryPositions, keyPositions),
  }
  const q = floats(c.b * c.sq * hq * c.d, c.seed)
  const k = floats(c.b * c.sk * c.hkv * c.d, c.seed + 1)
  const v = floats(c.b * c.sk * c.hkv * c.dv, c.seed + 2)
  return { shape, q, k, v, rows: c.b * hq * c.sq }
}

/** The emulator's request header of a case: the binding's dims, then the positions' and first keys' lengths. */
const header = (s: Cpu.AttentionShape, extra: ReadonlyArray<number> = []) => {
  const [b, sq, sk, hq, hkv, d, dv, scale, causal, qpos, kpos, qfirst] = Cpu.attentionDims(s)
  return Float64Array.of(b, sq, sk, hq, hkv, d, dv, Math.fround(scale), causal ? 1 : 0, qpos?.length ?? 0, kpos?.length ?? 0, qfirst?.length ?? 0, ...extra)
}

const positionParts = (s: Cpu.AttentionShape): Array<Part> => [s.queryPositions ?? new Int32Array(0), s.keyPositions ?? new Int32Array(0), s.queryFirstKeys ?? new Int32Array(0)]

/** A backward case: the inputs, the reference's forward (out, lse as the case stores it), a gradient and the reference's gradients. */
const backwardCase = (c: AttentionCase) => {
  const { shape, q, k, v, rows } = inputs(c)
  const out = new Float32Array(rows * c.dv)
  const lse64 = new Float64Array(rows)
  scalar(() => Cpu.attention({ ...shape, q, k, v, out, lse: lse64 }))
  const lse = c.lse64 ? lse64 : Float32Array.from(lse64)
  const gradOut = floats(rows * c.dv, c.seed + 3)
  const want = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
  scalar(() => Cpu.attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...want }))
  return { shape, q, k, v, out, lse, gradOut, want }
}

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
    const { shape, q, k, v, out, lse, gradOut, want } = backwardCase(c)
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

/**
 * |got - want| within `tolerance` x (1 + the largest |want|) + `floor` everywhere; infinities
 * equal. The floor is float32's rounding of the dot products inside (for the gradients, where
 * dout . v - delta cancels: an exact 0 in the reference is a few ulps of (d + dv) terms of up to
 * 16 in float32).
 */
const expectNear = (got: ArrayLike<number>, want: ArrayLike<number>, tolerance: number, what: string, floor = 0) => {
  let largest = 0
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i] as number)) largest = Math.max(largest, Math.abs(want[i] as number))
  const bound = tolerance * (1 + largest) + floor
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i] as number, want[i] as number]
    const ok = Number.isFinite(w) ? Math.abs(g - w) <= bound : g === w
    if (!ok) expect.fail(`${what}[${i}]: ${g} against the reference's ${w} (bound ${bound})`)
  }
  expect(got.length).toBe(want.length)
}

const flashForward: Twin<AttentionCase> = {
  name: "attention, flash-tiled: the CPU's float64 reference within float32's rounding (out and lse; GQA, causal, positions, rows past a block)",
  cases: flashCases,
  check: (c, on) => {
    const { shape, q, k, v, rows } = inputs(c)
    const out = new Float32Array(rows * c.dv)
    const lse = new Float64Array(rows)
    scalar(() => Cpu.attention({ ...shape, q, k, v, out, lse }))
    let got: { out: ArrayLike<number>; lse: ArrayLike<number> }
    if (on === "host") {
      const [o, l] = emulate(
        "attention_flash",
        [header(shape), q, k, v, ...positionParts(shape)],
        [
          ["f32", rows * c.dv],
          ["f64", rows],
        ],
      )
      got = { out: o as Part, lse: l as Part }
    } else {
      got = { out: new Float32Array(rows * c.dv), lse: c.lse64 ? new Float64Array(rows) : new Float32Array(rows) }
      device().attention({ ...shape, q, k, v, out: got.out as Float32Array, lse: got.lse as Float32Array | Float64Array })
    }
    expectNear(got.out, out, 1e-4, "out")
    for (let r = 0; r < rows; r++) {
      const [g, w] = [got.lse[r] as number, lse[r] as number]
      if (!(Number.isFinite(w) ? Math.abs(g - w) <= 1e-5 * (1 + Math.abs(w)) : g === w)) expect.fail(`lse[${r}]: ${g} against ${w}`)
    }
  },
}

const flashBackward: Twin<AttentionCase> = {
  name: "attentionBackward, flash-tiled: the CPU's float64 reference within float32's rounding (dq, dk, dv; lse float32 or float64)",
  cases: flashCases,
  check: (c, on) => {
    const { shape, q, k, v, out, lse, gradOut, want } = backwardCase(c)
    const got = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
    if (on === "host") {
      const [dq, dk, dv] = emulate(
        "attention_flash_backward",
        [header(shape, [c.lse64 ? 0 : 1]), q, k, v, out, gradOut, lse, ...positionParts(shape)],
        [
          ["f32", q.length],
          ["f32", k.length],
          ["f32", v.length],
        ],
      )
      got.gradQ.set(dq as Float32Array)
      got.gradK.set(dk as Float32Array)
      got.gradV.set(dv as Float32Array)
    } else device().attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...got })
    const floor = 4e-6 * (c.d + c.dv)
    expectNear(got.gradQ, want.gradQ, 1e-4, "gradQ", floor)
    // A key's gradient sums every query row's cancelled residue (sq x group rows of a few ulps
    // each): its floor grows as their square root. A CI run found -2.6e-4 where the reference is an
    // exact 0 (one key, 240 query rows) against the single row's floor of 1.5e-4.
    expectNear(got.gradK, want.gradK, 1e-4, "gradK", floor * Math.sqrt(c.sq * c.group))
    expectNear(got.gradV, want.gradV, 1e-4, "gradV", floor)
  },
}

/** The attention twins, for both executors. */
export const attentionTwins: ReadonlyArray<Runnable> = [
  runnable(forward),
  runnable(backward),
  runnable(flashForward),
  runnable(flashBackward),
  runnable({ ...flashForward, name: "attention, flash-tiled, documents: the key tiles before a block's documents skipped, within float32's rounding", cases: documentCases }),
  runnable({
    ...flashBackward,
    name: "attentionBackward, flash-tiled, documents: the query tiles before a key block's documents skipped, within float32's rounding",
    cases: documentCases,
  }),
]
