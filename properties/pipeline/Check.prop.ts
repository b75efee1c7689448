// The static checker: every generated schedule passes, and hand-broken schedules fail with the
// right diagnosis (mismatch, deadlock with its cycle or its missing send, leftovers, local rules).
import fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as A from "../../src/pipeline/Action.js"
import type { Action } from "../../src/pipeline/Action.js"
import * as Check from "../../src/pipeline/Check.js"
import * as Schedule from "../../src/pipeline/Schedule.js"
import { anyConfig, build, interleavedConfig, withRank } from "./arbitraries.js"

const failure = (s: Check.CheckInput, options?: Check.CheckOptions): Check.CheckError => {
  const r = Check.check(s, options)
  if (Result.isSuccess(r)) throw new Error("expected the checker to fail")
  return r.failure
}

const swap = (xs: ReadonlyArray<Action>, i: number, j: number): Array<Action> => {
  const out = [...xs]
  const [a, b] = [out[i]!, out[j]!]
  out[i] = b
  out[j] = a
  return out
}

const linkOf = (a: Action): string | undefined =>
  a._tag === "recvForward" || a._tag === "recvBackward" ? `${a._tag}<${a.fromPp}` : a._tag === "sendForward" || a._tag === "sendBackward" ? `${a._tag}>${a.toPp}` : undefined

describe("checker accepts the generated schedules", () => {
  test("every schedule passes, delivering one message per stage boundary, micro-batch and direction", () => {
    fc.assert(
      fc.property(anyConfig, (c) => {
        const s = build(c)
        const r = Check.check(s)
        if (Result.isFailure(r)) throw new Error(Check.format(r.failure))
        const boundaries = c.pp * s.vpp - 1
        expect(r.success.messages).toBe((c.forwardOnly ? 1 : 2) * boundaries * c.microBatches)
        expect(r.success.steps).toEqual(s.ranks.map((x) => x.length))
      }),
      { numRuns: 200 },
    )
  })
})

describe("checker rejects broken schedules", () => {
  test("swapping two receives on one link: a mismatch at the first, naming both micro-batches", () => {
    fc.assert(
      fc.property(
        anyConfig.filter((c) => c.pp > 1),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (c, pr, pi, pj) => {
          const s = build(c)
          const p = pr % c.pp
          const actions = s.ranks[p]!
          const recvs = actions.flatMap((a, i) => (a._tag === "recvForward" || a._tag === "recvBackward" ? [i] : []))
          const i = recvs[pi % recvs.length]!
          const same = recvs.filter((j) => j > i && linkOf(actions[j]!) === linkOf(actions[i]!))
          if (same.length === 0) return
          const j = same[pj % same.length]!
          const e = failure(withRank(s, p, swap(actions, i, j)))
          if (e._tag !== "Mismatch") throw new Error(`expected a mismatch, got ${Check.format(e)}`)
          const [first, second] = [actions[i]!, actions[j]!]
          expect(e.receiver.pp).toBe(p)
          expect(e.receiver.step).toBe(i)
          expect(e.expected).toEqual({ microBatch: second.microBatch, chunk: second.chunk })
          expect(e.arrived).toEqual({ microBatch: first.microBatch, chunk: first.chunk })
          expect(e.sender.pp).toBe(e.link.from)
          expect(Check.format(e)).toContain(`rank ${p} step ${i}`)
        },
      ),
      { numRuns: 150 },
    )
  })

  test("a missing send: the receiver waits on a rank that has finished", () => {
    const s = Schedule.oneFOneB(2, 1)
    const rank1 = s.ranks[1]!.filter((a) => a._tag !== "sendBackward")
    const e = failure(withRank(s, 1, rank1))
    expect(e).toEqual({
      _tag: "Deadlock",
      blocked: [{ at: { pp: 0, step: 2, action: A.recvBackward(0, 0, 1) }, waitsOn: 1, waitsOnFinished: true }],
      cycle: [],
    })
    expect(Check.format(e)).toContain("finished without sending it")
  })

  test("removing any send breaks the schedule; removing the last send of a link deadlocks it", () => {
    fc.assert(
      fc.property(
        anyConfig.filter((c) => c.pp > 1),
        fc.nat(),
        fc.nat(),
        (c, pr, pk) => {
          const s = build(c)
          const p = pr % c.pp
          const actions = s.ranks[p]!
          const sends = actions.flatMap((a, i) => (a._tag === "sendForward" || a._tag === "sendBackward" ? [i] : []))
          if (sends.length === 0) return
          const k = sends[pk % sends.length]!
          const e = failure(
            withRank(
              s,
              p,
              actions.filter((_, i) => i !== k),
            ),
          )
          expect(["Mismatch", "Deadlock"]).toContain(e._tag)
          const lastOnLink = !actions.some((a, i) => i > k && linkOf(a) === linkOf(actions[k]!))
          if (lastOnLink) expect(e._tag).toBe("Deadlock")
        },
      ),
      { numRuns: 150 },
    )
  })

  test("a cycle: rank 0 waits for the gradient of micro-batch 0 before sending its activation", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 12 }), (pp, m) => {
        const s = Schedule.oneFOneB(pp, m)
        const rank0 = s.ranks[0]!
        const at = rank0.findIndex((a) => a._tag === "recvBackward")
        const moved = [rank0[0]!, rank0[at]!, ...rank0.slice(1).filter((_, i) => i + 1 !== at)]
        const e = failure(withRank(s, 0, moved))
        if (e._tag !== "Deadlock") throw new Error(Check.format(e))
        expect([...e.cycle].sort()).toEqual([0, 1])
        expect(e.blocked.find((b) => b.at.pp === 0)?.at.action).toEqual(A.recvBackward(0, 0, 1))
        expect(e.blocked.find((b) => b.at.pp === 1)?.at.action).toEqual(A.recvForward(0, 0, 0))
        expect(Check.format(e)).toMatch(/cycle (0 -> 1 -> 0|1 -> 0 -> 1)/)
      }),
      { numRuns: 40 },
    )
  })

  test("leftovers: the last rank of a forward-only run stops early", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 12 }), (pp, m) => {
        const s = Schedule.oneFOneB(pp, m, { forwardOnly: true })
        const e = failure(withRank(s, pp - 1, []))
        if (e._tag !== "Leftover") throw new Error(Check.format(e))
        expect(e.messages.length).toBe(m)
        expect(e.messages.every((x) => x.link.from === pp - 2 && x.link.to === pp - 1)).toBe(true)
        expect(e.messages.map((x) => x.microBatch)).toEqual(Array.from({ length: m }, (_, i) => i))
      }),
      { numRuns: 30 },
    )
  })

  test("local rules: backward before forward, twice, wrong peer, first/last stage, FIFO, missing", () => {
    const one = Schedule.noPipelining(2)
    const invalid = (s: Check.CheckInput, options?: Check.CheckOptions) => {
      const e = failure(s, options)
      if (e._tag !== "Invalid") throw new Error(Check.format(e))
      return e
    }
    expect(invalid(withRank(one, 0, swap(one.ranks[0]!, 0, 1))).reason).toContain("before its forward")
    expect(invalid(withRank(one, 0, [A.forward(0, 0), A.forward(0, 0)])).reason).toContain("twice")
    expect(invalid(withRank(one, 0, [A.recvForward(0, 0, 0)])).reason).toContain("first stage")
    const fifo = withRank(one, 0, [A.forward(0, 0), A.forward(1, 0), A.backward(1, 0), A.backward(0, 0)])
    expect(invalid(fifo).reason).toContain("FIFO")
    expect(Result.isSuccess(Check.check(fifo, { backwardOrder: "any" }))).toBe(true)
    const missing = failure(withRank(one, 0, [A.forward(0, 0), A.backward(0, 0)]))
    expect(missing).toMatchObject({
      _tag: "Missing",
      pp: 0,
      missing: [
        { compute: "forward", microBatch: 1, chunk: 0 },
        { compute: "backward", microBatch: 1, chunk: 0 },
      ],
    })

    const two = Schedule.oneFOneB(3, 2)
    const wrongPeer = two.ranks[1]!.map((a) => (a._tag === "sendForward" ? { ...a, toPp: 0 } : a))
    expect(invalid(withRank(two, 1, wrongPeer)).reason).toContain("not rank 0")
    expect(invalid(withRank(two, 2, [A.sendForward(0, 0, 0)])).reason).toContain("last stage")
    expect(invalid(withRank(two, 0, [A.sendBackward(0, 0, 2)])).reason).toContain("first stage")
    expect(invalid(withRank(two, 0, [A.backward(0, 0)]), {}).reason).toContain("before its forward")
    const fwdOnly = Schedule.oneFOneB(2, 1, { forwardOnly: true })
    expect(invalid(withRank(fwdOnly, 1, [...fwdOnly.ranks[1]!, A.backward(0, 0)])).reason).toContain("forward-only")
  })

  test("interleaving: a chunk cannot forward before the previous chunk's output arrives", () => {
    fc.assert(
      fc.property(
        interleavedConfig().filter((c) => (c.vpp ?? 1) > 1 && !c.forwardOnly),
        (c) => {
          const s = build(c)
          // Drop rank 0's first receive of a chunk-1 input: its forward of that chunk has no input.
          const rank0 = s.ranks[0]!
          const k = rank0.findIndex((a) => a._tag === "recvForward" && a.chunk === 1)
          const e = failure(
            withRank(
              s,
              0,
              rank0.filter((_, i) => i !== k),
            ),
          )
          expect(e._tag === "Invalid" || e._tag === "Mismatch").toBe(true)
          if (e._tag === "Invalid") expect(e.reason).toContain("before receiving its input")
        },
      ),
      { numRuns: 60 },
    )
  })
})
