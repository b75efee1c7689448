// The threads backend's control block reads what the rendezvous reads, straight from shared
// memory: a published signature comes back as it was issued, the descriptor-level agreement
// check says exactly what Collective.agrees says (it replaces it on the path every collective
// takes), each round of a slot is decided once, and a failure comes back word for word.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Collective from "../../../src/comm/Collective.js"
import * as Group from "../../../src/comm/Group.js"
import { ControlBlock, bytesFor, slots } from "../../../src/comm/threads/ControlBlock.js"
import * as Meeting from "../../../src/comm/threads/Meeting.js"
import * as Verdict from "../../../src/comm/Verdict.js"

const ops: ReadonlyArray<Collective.Op> = ["allReduce", "allGather", "allGatherV", "reduceScatter", "reduceScatterV", "allToAllV", "broadcast", "barrier"]

/** A signature of a group of n: each field drawn from few values, so that members often agree. */
const signature = (n: number, rank: number): fc.Arbitrary<Collective.Signature> =>
  fc
    .record({
      op: fc.constantFrom(...ops),
      dtype: fc.constantFrom("float32" as const, "float64" as const),
      shape: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }),
      reduce: fc.constantFrom(undefined, "sum" as const, "max" as const),
      root: fc.constantFrom(undefined, 0, 1),
      list: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
    })
    .map(({ op, dtype, shape, reduce, root, list }) => ({
      op,
      rank,
      dtype,
      shape,
      ...(reduce === undefined ? {} : { reduce }),
      ...(root === undefined ? {} : { root }),
      ...(op === "allToAllV" ? { sendSplits: list } : op === "reduceScatterV" ? { counts: list } : {}),
    }))

const members = fc.integer({ min: 2, max: 5 }).chain((n) =>
  fc.record({
    seq: fc.integer({ min: 0, max: 3 * slots }),
    parts: fc.tuple(...Array.from({ length: n }, (_, r) => signature(n, r))),
  }),
)

const publishAll = (parts: ReadonlyArray<Collective.Signature>, seq: number): ControlBlock => {
  const block = new ControlBlock(new SharedArrayBuffer(bytesFor(parts.length)), parts.length)
  parts.forEach((p, j) => {
    block.publish(seq, j, p, undefined, { buffer: j, offset: 64, length: 3, chunk: true })
  })
  return block
}

describe("the control block of a group", () => {
  test("a published signature and placement come back as issued", () => {
    fc.assert(
      fc.property(members, ({ seq, parts }) => {
        const block = publishAll(parts, seq)
        parts.forEach((p, j) => {
          expect(block.signature(seq, j, p.rank)).toEqual(p)
          expect(block.placement(seq, j)).toEqual({ buffer: j, offset: 64, length: 3, chunk: true })
          expect(block.issued(j)).toBe(seq + 1)
          expect(block.left(seq, j)).toBe(parts.length)
        })
      }),
      { numRuns: 300 },
    )
  })

  test("agreement read from the descriptors is Collective.agrees", () => {
    fc.assert(
      fc.property(members, ({ seq, parts }) => {
        const block = publishAll(parts, seq)
        for (let i = 0; i < parts.length; i++)
          for (let j = 0; j < parts.length; j++) expect(block.agrees(seq, i, j)).toBe(Collective.agrees(parts[i] as Collective.Signature, parts[j] as Collective.Signature))
      }),
      { numRuns: 500 },
    )
  })

  test("the verdict once all arrived is Verdict.judge's, word for word", () => {
    fc.assert(
      fc.property(members, ({ seq, parts }) => {
        // Members check their own arguments before publishing; only those that pass get here.
        fc.pre(parts.every((p) => Collective.checkOwn(p, parts.length) === undefined))
        const group = Group.make(
          "g#0",
          parts.map((p) => p.rank),
        )
        const block = publishAll(parts, seq)
        const judged = Verdict.judge(
          group,
          seq,
          parts,
          parts.map(() => undefined),
        )
        const record = Meeting.verdict(block, group, seq)
        expect(record === undefined).toBe(judged === undefined)
        if (record !== undefined && judged !== undefined) {
          group.ranks.forEach((rank, j) => expect(Meeting.errorOf(record, group, seq, j)).toEqual(judged(rank)))
        }
      }),
      { numRuns: 300 },
    )
  })

  test("each round of a slot is decided once; the failure reads back for every member", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 * slots }),
        fc.oneof(fc.string({ maxLength: 6000 }), fc.string({ unit: fc.constantFrom('"', "\\", "é", "\u0001"), maxLength: 5000 })),
        (seq, detail) => {
          const block = new ControlBlock(new SharedArrayBuffer(bytesFor(3)), 3)
          expect(block.state(seq)).toBe("open")
          const failure = { reasons: ["BadInput" as const, "Mismatch" as const, "Mismatch" as const], op: "allToAllV", ranks: [4], detail }
          expect(block.decide(seq, failure)).toBe("failed")
          expect(block.decide(seq, undefined)).toBe("failed")
          const back = block.failure(seq)
          expect({ ...back, detail: "" }).toEqual({ ...failure, detail: "" })
          // Long details are cut to fit the slot, never garbled.
          expect(detail.startsWith(back.detail.replace(/\.\.\.$/, ""))).toBe(true)
          // The next round of the same slot starts open; earlier rounds read as stale.
          expect(block.state(seq + slots)).toBe("open")
          expect(block.decide(seq + slots, undefined)).toBe("ok")
          expect(block.state(seq)).toBe("stale")
        },
      ),
      { numRuns: 200 },
    )
  })
})
