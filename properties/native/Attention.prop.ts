// Properties of the native attention forward / backward against a float64 oracle
// (attentionOracle.ts) on every ISA with 1 and 2 threads: grouped-query heads, causal masks from
// position arrays and query first keys (document starts, attentionDocuments.ts; each shared or per
// batch entry, rows with no visible key), Sq != Sk, D != Dv, lse as
// Float32Array or Float64Array, views in guarded buffers. Errors are held to 1e-5 of the terms'
// scale (see the oracle). Async equals sync bit for bit; bad arguments throw.
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import { documentStarts, firstKeysOf } from "./attentionDocuments.js"
import * as Oracle from "./attentionOracle.js"
import { type Placement, configs, dim, expectClose, expectSame, guardsIntact, pin, place32, placement, random, unpin, values } from "./tensorCases.js"

interface Case extends Cpu.AttentionShape {
  readonly seed: number
  readonly lseKind: "f32" | "f64" | "none"
}

const positions = (rng: (lo?: number, hi?: number) => number, mode: string, b: number, s: number): Int32Array | undefined =>
  mode === "none" ? undefined : Int32Array.from({ length: mode === "shared" ? s : b * s }, () => Math.floor(rng(-4, s + 2)))

/** Cases with `rows` queries (and keys, when not as many) and `width` wide heads. */
const casesOf = (rows: fc.Arbitrary<number>, width: fc.Arbitrary<number>): fc.Arbitrary<Case> =>
  fc
    .record({
      b: fc.integer({ min: 0, max: 2 }),
      sq: rows,
      skSame: fc.boolean(),
      skOther: rows,
      hkv: fc.integer({ min: 1, max: 3 }),
      group: fc.integer({ min: 1, max: 3 }),
      d: width,
      dvSame: fc.boolean(),
      dvOther: width,
      causal: fc.boolean(),
      qMode: fc.constantFrom("none", "shared", "batch"),
      kMode: fc.constantFrom("none", "shared", "batch"),
      fMode: fc.constantFrom("none" as const, "shared" as const, "batch" as const),
      scale: fc.option(fc.double({ min: -1, max: 1, noNaN: true }), { nil: undefined }),
      lseKind: fc.constantFrom("f32" as const, "f64" as const, "none" as const),
      seed: fc.integer(),
    })
    .map((r) => {
      const rng = random(r.seed ^ 0x5bd1e995)
      const sk = r.skSame ? r.sq : r.skOther
      const queryPositions = positions(rng, r.qMode, r.b, r.sq)
      const keyPositions = positions(rng, r.kMode, r.b, sk)
      return {
        b: r.b,
        sq: r.sq,
        sk,
        hq: r.hkv * r.group,
        hkv: r.hkv,
        d: r.d,
        dv: r.dvSame ? r.d : r.dvOther,
        scale: r.scale,
        causal: r.causal,
        queryPositions,
        keyPositions,
        queryFirstKeys: firstKeysOf(() => rng(0, 1), r.fMode, r.b, r.sq, sk, queryPositions, keyPositions),
        lseKind: r.lseKind,
        seed: r.seed,
      }
    })

const caseArb = casesOf(dim(40), dim(40))

// Past 64 queries the CPU backward takes its query blocks in groups (QBlocks in
// attention_impl.h) whose dk and dv rows meet in a tile: several groups, any masks.
const longCaseArb = casesOf(fc.integer({ min: 65, max: 150 }), dim(17))

// Documents packed into sequences at the default positions, past a block of queries: whole key
// blocks lie before a query block's documents (which the kernels skip) as well as after it.
const documentCaseArb: fc.Arbitrary<Case> = fc
  .record({
    b: fc.integer({ min: 1, max: 2 }),
    s: fc.integer({ min: 65, max: 260 }),
    hkv: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    d: dim(17),
    shared: fc.boolean(),
    seed: fc.integer(),
  })
  .map((r) => {
    const rng = random(r.seed ^ 0x2545f491)
    const queryFirstKeys = documentStarts(
      () => rng(0, 1),
      r.shared ? 1 : r.b,
      r.s,
      (_, i) => i,
      () => r.s,
    )
    return { b: r.b, sq: r.s, sk: r.s, hq: r.hkv * r.group, hkv: r.hkv, d: r.d, dv: r.d, causal: true, queryFirstKeys, lseKind: "f32" as const, seed: r.seed }
  })

const places = fc.record({ q: placement, k: placement, v: placement, out: placement })

interface Run {
  readonly args: Cpu.AttentionArgs
  readonly inputs: Oracle.Inputs
}

const build = (c: Case, at: { readonly q: Placement; readonly k: Placement; readonly v: Placement; readonly out: Placement }): Run => {
  const rng = random(c.seed)
  const q = values(() => rng(-2, 2), c.b * c.sq * c.hq * c.d)
  const k = values(() => rng(-2, 2), c.b * c.sk * c.hkv * c.d)
  const v = values(rng, c.b * c.sk * c.hkv * c.dv)
  const lseLength = c.b * c.hq * c.sq
  const lse = c.lseKind === "f32" ? new Float32Array(lseLength) : c.lseKind === "f64" ? new Float64Array(lseLength) : undefined
  const out = place32(new Float32Array(c.b * c.sq * c.hq * c.dv).fill(Number.NaN), at.out)
  return { args: { ...c, q: place32(q, at.q), k: place32(k, at.k), v: place32(v, at.v), out, lse }, inputs: { q, k, v } }
}

const checkForward = (run: Run): Oracle.Forward => {
  const want = Oracle.forward(run.args, run.inputs)
  Cpu.attention(run.args)
  expectClose("out", run.args.out, want.out, 1e-5, want.outScale, 1e-30)
  if (run.args.lse !== undefined) expectClose("lse", run.args.lse, want.lse, 1e-5, want.lseScale)
  if (!guardsIntact(run.args.out) || !guardsIntact(run.args.q) || !guardsIntact(run.args.v)) throw new Error("a guard changed")
  return want
}

const checkBackward = (run: Run, seed: number): void => {
  const a = run.args
  // The backward takes the native forward's out and lse, as a training step would.
  const lse = a.lse ?? new Float32Array(a.b * a.hq * a.sq)
  Cpu.attention({ ...a, lse })
  const gradOut = values(random(seed), a.out.length)
  const grads = { gradQ: new Float32Array(a.q.length).fill(Number.NaN), gradK: new Float32Array(a.k.length).fill(Number.NaN), gradV: new Float32Array(a.v.length).fill(Number.NaN) }
  Cpu.attentionBackward({ ...a, lse, gradOut: Float32Array.from(gradOut), ...grads })
  const want = Oracle.backward(a, run.inputs, gradOut)
  expectClose("gradQ", grads.gradQ, want.dq, 1e-5, want.dqScale, 1e-30)
  expectClose("gradK", grads.gradK, want.dk, 1e-5, want.dkScale, 1e-30)
  expectClose("gradV", grads.gradV, want.dv, 1e-5, want.dvScale, 1e-30)
}

const plain = { shared: false, before: 0, after: 0 }
const plainPlaces = { q: plain, k: { shared: true, before: 1, after: 2 }, v: plain, out: { shared: false, before: 3, after: 0 } }

afterAll(unpin)

describe.each(configs)("attention on %s, %d thread(s)", (isa, threads) => {
  test("forward: out and lse within 1e-5 of the float64 oracle (masks, GQA, views)", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(caseArb, places, (c, at) => void checkForward(build(c, at))),
      { numRuns: 50 },
    )
  })

  test("backward: gradQ, gradK, gradV within 1e-5 of the float64 oracle", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(caseArb, fc.integer(), (c, seed) => checkBackward(build(c, plainPlaces), seed)),
      { numRuns: 40 },
    )
  })

  test("backward past 64 queries: within 1e-5 of the float64 oracle (masks, GQA)", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(longCaseArb, fc.integer(), (c, seed) => checkBackward(build(c, plainPlaces), seed)),
      { numRuns: 6 },
    )
  })

  test("documents packed in sequences: forward and backward within 1e-5 of the float64 oracle", () => {
    pin(isa, threads)
    fc.assert(
      fc.property(documentCaseArb, fc.integer(), (c, seed) => {
        const run = build(c, plainPlaces)
        checkForward(run)
        checkBackward(run, seed)
      }),
      { numRuns: 5 },
    )
  })

  test("a size split across threads (causal, grouped heads, Dv != D)", () => {
    pin(isa, threads)
    const c: Case = { b: 1, sq: 130, sk: 130, hq: 4, hkv: 2, d: 48, dv: 40, causal: true, lseKind: "f32", seed: 3 }
    const run = build(c, plainPlaces)
    checkForward(run)
    checkBackward(run, 4)
  })

  test("attentionAsync equals attention bit for bit", async () => {
    pin(isa, threads)
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const sync = build(c, plainPlaces)
        const async = build(c, plainPlaces)
        Cpu.attention(sync.args)
        await Cpu.attentionAsync(async.args)
        expectSame("out", async.args.out, sync.args.out)
        if (sync.args.lse !== undefined && async.args.lse !== undefined) expectSame("lse", async.args.lse, sync.args.lse)
      }),
      { numRuns: 15 },
    )
  })
})

describe("attention semantics", () => {
  test("a query that sees no key outputs zeros and lse -Infinity", () => {
    const q = new Float32Array(2 * 4).fill(1)
    const k = new Float32Array(3 * 4).fill(1)
    const v = new Float32Array(3 * 4).fill(2)
    const out = new Float32Array(8).fill(9)
    const lse = new Float64Array(2)
    // Query 0 at position 0 sees nothing (keys at 1, 2, 3); query 1 at position 2 sees two keys.
    Cpu.attention({ q, k, v, out, lse, b: 1, sq: 2, sk: 3, hq: 1, hkv: 1, d: 4, dv: 4, queryPositions: Int32Array.of(0, 2), keyPositions: Int32Array.of(1, 2, 3) })
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 2, 2, 2, 2])
    expect(lse[0]).toBe(Number.NEGATIVE_INFINITY)
    expect(lse[1]).toBeCloseTo(2 + Math.log(2), 6) // two scores of 4 / sqrt(4) = 2
  })

  test("a query sees the keys from its first key to its position; one whose first key is past every key sees none", () => {
    const q = new Float32Array(3 * 2).fill(1)
    const k = new Float32Array(4 * 2).fill(1)
    const v = Float32Array.of(1, 10, 2, 20, 4, 40, 8, 80)
    const out = new Float32Array(6).fill(9)
    const lse = new Float64Array(3)
    const gradQ = new Float32Array(6).fill(9)
    // Query 0 (position 3) sees keys 1..3, query 1 (position 2) keys 2..2, query 2 nothing.
    const shape = { b: 1, sq: 3, sk: 4, hq: 1, hkv: 1, d: 2, dv: 2, queryPositions: Int32Array.of(3, 2, 3), queryFirstKeys: Int32Array.of(1, 2, 4) }
    Cpu.attention({ q, k, v, out, lse, ...shape })
    expect(Array.from(out)).toEqual([Math.fround(14 / 3), Math.fround(140 / 3), 4, 40, 0, 0])
    expect(lse[2]).toBe(Number.NEGATIVE_INFINITY)
    Cpu.attentionBackward({ q, k, v, out, lse, gradOut: new Float32Array(6).fill(1), gradQ, gradK: new Float32Array(8), gradV: new Float32Array(8), ...shape })
    expect(Array.from(gradQ.subarray(4))).toEqual([0, 0])
  })
})

describe("attention argument errors", () => {
  const shape = { b: 1, sq: 2, sk: 2, hq: 2, hkv: 1, d: 3, dv: 3 }
  const ok = (): Cpu.AttentionArgs => ({ ...shape, q: new Float32Array(12), k: new Float32Array(6), v: new Float32Array(6), out: new Float32Array(12) })
  test.each([
    ["hq not a multiple of hkv", { hkv: 4 }, RangeError, "attention: hq (2) must be a multiple of hkv (4), and hkv at least 1"],
    ["hkv 0", { hkv: 0 }, RangeError, "attention: hq (2) must be a multiple of hkv (0), and hkv at least 1"],
    ["q too short", { q: new Float32Array(11) }, RangeError, "attention: q has 11 elements, expected b * sq * hq * d = 12"],
    ["v float64", { v: new Float64Array(6) }, TypeError, "attention: v must be a Float32Array, got Float64Array"],
    ["lse wrong length", { lse: new Float32Array(3) }, RangeError, "attention: lse has 3 elements, expected b * hq * sq = 4"],
    ["positions wrong length", { queryPositions: new Int32Array(3) }, RangeError, "attention: queryPositions has 3 elements, expected S = 2 or B * S = 2"],
    ["positions not int32", { keyPositions: new Float32Array(2) }, TypeError, "attention: keyPositions must be a Int32Array, got Float32Array"],
    ["first keys wrong length", { queryFirstKeys: new Int32Array(3) }, RangeError, "attention: queryFirstKeys has 3 elements, expected S = 2 or B * S = 2"],
    ["first keys not int32", { queryFirstKeys: new Uint32Array(2) }, TypeError, "attention: queryFirstKeys must be a Int32Array, got Uint32Array"],
    ["scale infinite", { scale: Number.POSITIVE_INFINITY }, RangeError, "attention: scale must be finite"],
    ["sq fractional", { sq: 1.5 }, RangeError, "attention: sq must be an integer in [0, 2147483647], got 1.5"],
  ] as const)("%s", (_, change, ctor, message) => {
    const args = { ...ok(), ...change } as unknown as Cpu.AttentionArgs
    expect(() => Cpu.attention(args)).toThrow(new ctor(message))
    expect(() => Cpu.attentionAsync(args)).toThrow(new ctor(message.replace("attention:", "attentionAsync:")))
    expect(Array.from(args.out).every((x) => x === 0)).toBe(true)
  })

  test("out overlapping q; backward outputs overlapping inputs", () => {
    const a = ok()
    expect(() => Cpu.attention({ ...a, out: a.q })).toThrow(new TypeError("attention: out and q must not overlap in memory"))
    const lse = new Float32Array(4)
    const grads = { gradQ: new Float32Array(12), gradK: new Float32Array(6), gradV: new Float32Array(6) }
    expect(() => Cpu.attentionBackward({ ...a, lse, gradOut: a.out, ...grads, gradK: a.v })).toThrow(new TypeError("attentionBackward: gradK and v must not overlap in memory"))
    expect(() => Cpu.attentionBackward({ ...a, lse, gradOut: new Float32Array(5), ...grads })).toThrow(
      new RangeError("attentionBackward: gradOut has 5 elements, expected b * sq * hq * dv = 12"),
    )
  })
})
