// Generated schedules: every (micro-batch, chunk) computed once per rank, warmup/steady/cooldown
// equal to the reference formulas, compute orders shaped F^W (F B)^S B^C, the chosen kind, and
// the reference's validation errors as ConfigErrors naming the field (semantics.md 3.1, 3.3, 3.4).
import fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as Plan from "../../src/pipeline/Plan.js"
import * as Schedule from "../../src/pipeline/Schedule.js"
import { anyConfig, build, interleavedConfig, interleavedWarmup, letters, oneFOneBWarmup, plainConfig } from "./arbitraries.js"

describe("schedules", () => {
  test("each rank forwards and backwards every (micro-batch, chunk) exactly once", () => {
    fc.assert(
      fc.property(anyConfig, (c) => {
        const s = build(c)
        expect(s.ranks.length).toBe(c.pp)
        for (const actions of s.ranks) {
          for (const tag of ["forward", "backward"] as const) {
            const seen = new Map<string, number>()
            for (const a of actions) if (a._tag === tag) seen.set(`${a.microBatch}:${a.chunk}`, (seen.get(`${a.microBatch}:${a.chunk}`) ?? 0) + 1)
            const expected = tag === "backward" && c.forwardOnly ? 0 : c.microBatches * s.vpp
            expect(seen.size).toBe(expected)
            expect([...seen.values()].every((n) => n === 1)).toBe(true)
          }
        }
      }),
      { numRuns: 150 },
    )
  })

  test("1F1B: warmup min(P-r-1, M), steady M-W, cooldown W, computes F^W (FB)^S B^W", () => {
    fc.assert(
      fc.property(plainConfig(), (c) => {
        const s = build(c)
        expect(s.kind).toBe(c.pp === 1 ? "noPipelining" : "oneFOneB")
        s.ranks.forEach((actions, r) => {
          const w = oneFOneBWarmup(c.pp, r, c.microBatches)
          const steady = c.microBatches - w
          expect(s.phases[r]).toEqual({ warmup: w, steady, cooldown: c.forwardOnly ? 0 : w })
          const expected = c.forwardOnly ? "F".repeat(c.microBatches) : "F".repeat(w) + "FB".repeat(steady) + "B".repeat(w)
          expect(letters(actions)).toBe(expected)
          // Micro-batches run in order, forward and backward alike.
          const order = (tag: string) => actions.filter((a) => a._tag === tag).map((a) => a.microBatch)
          expect(order("forward")).toEqual(Array.from({ length: c.microBatches }, (_, i) => i))
          if (!c.forwardOnly) expect(order("backward")).toEqual(order("forward"))
        })
      }),
      { numRuns: 150 },
    )
  })

  test("interleaved: warmup (P-r-1)*2 + (V-1)*N capped at M*V, F^W (FB)^R B^W, table order", () => {
    fc.assert(
      fc.property(interleavedConfig(), (c) => {
        const s = build(c)
        const v = c.vpp ?? 1
        const n = c.microbatchGroupSize ?? c.pp
        expect(s.kind).toBe("interleaved")
        expect(s.microbatchGroupSize).toBe(n)
        const table = Plan.scheduleTable(c.microBatches, v, n)
        s.ranks.forEach((actions, r) => {
          const total = c.microBatches * v
          const w = interleavedWarmup(c.pp, v, r, c.microBatches, n, c.forwardOnly)
          expect(s.phases[r]).toEqual({ warmup: w, steady: total - w, cooldown: c.forwardOnly ? 0 : w })
          const expected = c.forwardOnly ? "F".repeat(total) : "F".repeat(w) + "FB".repeat(total - w) + "B".repeat(w)
          expect(letters(actions)).toBe(expected)
          const pick = (tag: string) => actions.filter((a) => a._tag === tag).map((a) => ({ microBatch: a.microBatch, chunk: a.chunk }))
          expect(pick("forward")).toEqual(table)
          if (!c.forwardOnly) expect(pick("backward")).toEqual(table.map((x) => ({ ...x, chunk: v - 1 - x.chunk })))
        })
      }),
      { numRuns: 150 },
    )
  })

  test("the schedule table lists each (mb, chunk) once, in groups of N with chunk outermost", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 8 }), (m, v, n) => {
        const table = Plan.scheduleTable(m, v, n)
        expect(new Set(table.map((x) => `${x.microBatch}:${x.chunk}`)).size).toBe(m * v)
        expect(table.length).toBe(m * v)
        // Micro-batch g*N + j of chunk c sits at g*N*V + c*size + j, size = its group's length (the
        // last group runs to M).
        table.forEach((x, k) => {
          const g = Math.floor(x.microBatch / n)
          const size = Math.min(n, m - g * n)
          expect(k).toBe(g * n * v + x.chunk * size + (x.microBatch - g * n))
        })
      }),
      { numRuns: 200 },
    )
  })

  test("sends and receives name the neighbouring pp ranks of the ring", () => {
    fc.assert(
      fc.property(anyConfig, (c) => {
        const s = build(c)
        s.ranks.forEach((actions, r) => {
          for (const a of actions) {
            if (a._tag === "sendForward" || a._tag === "recvBackward") expect(a._tag === "sendForward" ? a.toPp : a.fromPp).toBe((r + 1) % c.pp)
            if (a._tag === "sendBackward" || a._tag === "recvForward") expect(a._tag === "sendBackward" ? a.toPp : a.fromPp).toBe((r - 1 + c.pp) % c.pp)
          }
        })
      }),
      { numRuns: 100 },
    )
  })

  test("the first stage receives no activation, the last sends none and receives no gradient", () => {
    fc.assert(
      fc.property(anyConfig, (c) => {
        const s = build(c)
        const first = s.ranks[0] ?? []
        const last = s.ranks[c.pp - 1] ?? []
        expect(first.some((a) => a._tag === "recvForward" && a.chunk === 0)).toBe(false)
        expect(first.some((a) => a._tag === "sendBackward" && a.chunk === 0)).toBe(false)
        expect(last.some((a) => a._tag === "sendForward" && a.chunk === s.vpp - 1)).toBe(false)
        expect(last.some((a) => a._tag === "recvBackward" && a.chunk === s.vpp - 1)).toBe(false)
        if (c.pp === 1) expect(first.every((a) => a._tag === "forward" || a._tag === "backward")).toBe(true)
      }),
      { numRuns: 100 },
    )
  })
})

describe("validation", () => {
  const failure = (input: Schedule.ScheduleInput) => {
    const r = Schedule.validate(input)
    return Result.isFailure(r) ? r.failure : undefined
  }

  test("interleaving: rejected exactly when N is outside [P, M] or 0 < M % N < P, naming the field", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 30 }),
        fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
        (pp, vpp, m, given) => {
          const n = given ?? pp
          const outside = n > m || n < pp
          const remainder = m % n > 0 && m % n < pp
          const e = failure({ pp, vpp, microBatches: m, microbatchGroupSize: given })
          if (!outside && !remainder) {
            expect(e).toBeUndefined()
            return
          }
          if (e === undefined) throw new Error("expected a ConfigError")
          if (outside) {
            expect(e.field).toBe(given === undefined ? "microBatches" : "microbatchGroupSize")
            expect(e.message).toContain(`the number of contiguous micro-batches in a virtual pipeline stage should range in [PP=${pp}, M=${m}]`)
          } else {
            expect(e.field).toBe("microBatches")
            expect(e.value).toBe(m)
            expect(e.message).toContain(`should be 0, or larger than or equal to the pipeline-parallel size (${pp}), but it is ${m % n}`)
            // The suggested micro-batch counts are valid.
            const suggested = [...e.fix.matchAll(/\b(\d+) \(/g)].map((x) => Number(x[1]))
            expect(suggested.length).toBeGreaterThan(0)
            for (const s of suggested) expect(failure({ pp, vpp, microBatches: s, microbatchGroupSize: given })).toBeUndefined()
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  test("the reference's examples of the two conditions", () => {
    expect(failure({ pp: 4, vpp: 2, microBatches: 2 })?.field).toBe("microBatches")
    expect(failure({ pp: 2, vpp: 2, microBatches: 5, microbatchGroupSize: 6 })?.field).toBe("microbatchGroupSize")
    expect(failure({ pp: 4, vpp: 2, microBatches: 8, microbatchGroupSize: 3 })?.field).toBe("microbatchGroupSize")
    // M=10, N=4, P=4: remainder 2 < P.
    const e = failure({ pp: 4, vpp: 2, microBatches: 10 })
    expect(e?.field).toBe("microBatches")
    expect(e?.message).toContain("dependency bubbles")
    // M=5, N=3, P=2: remainder 2 >= P is fine (the reference docs' example).
    expect(failure({ pp: 2, vpp: 2, microBatches: 5, microbatchGroupSize: 3 })).toBeUndefined()
  })

  test("vpp needs pp > 1; the group size needs vpp; sizes must be positive integers", () => {
    expect(failure({ pp: 1, vpp: 2, microBatches: 4 })?.field).toBe("vpp")
    expect(failure({ pp: 4, microBatches: 8, microbatchGroupSize: 4 })?.field).toBe("microbatchGroupSize")
    expect(failure({ pp: 0, microBatches: 8 })?.field).toBe("pp")
    expect(failure({ pp: 2, microBatches: 0 })?.field).toBe("microBatches")
    expect(failure({ pp: 2, microBatches: 2.5 })?.field).toBe("microBatches")
    expect(failure({ pp: 2, vpp: -1, microBatches: 4 })?.field).toBe("vpp")
    expect(() => Schedule.interleaved(1, 2, 4)).toThrow(/vpp/)
    expect(() => Schedule.oneFOneB(2, 0)).toThrow(/microBatches/)
  })

  test("make picks the schedule like get_forward_backward_func", () => {
    expect(Schedule.make({ pp: 1, microBatches: 3 }).kind).toBe("noPipelining")
    expect(Schedule.make({ pp: 2, microBatches: 3 }).kind).toBe("oneFOneB")
    expect(Schedule.make({ pp: 2, vpp: 1, microBatches: 4 }).kind).toBe("interleaved")
    expect(Schedule.oneFOneB(1, 3).ranks).toEqual(Schedule.noPipelining(3).ranks)
  })
})
