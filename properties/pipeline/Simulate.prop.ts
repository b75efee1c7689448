// Timing: the simulated bubble of 1F1B (and of interleaved 1F1B with per-chunk times) equals
// the theoretical (P-1)/(V*M+P-1), timelines respect every data dependency, and broken
// schedules come back with the checker's diagnosis.
import fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as A from "../../src/pipeline/Action.js"
import * as Schedule from "../../src/pipeline/Schedule.js"
import * as Simulate from "../../src/pipeline/Simulate.js"
import { anyConfig, build, interleavedConfig, withRank } from "./arbitraries.js"

const timeline = (s: Schedule.Schedule, times: Simulate.Times): Simulate.Timeline => {
  const r = Simulate.simulate(s, times)
  if (Result.isFailure(r)) throw new Error(r.failure._tag)
  return r.success
}

describe("bubble", () => {
  test("bubbleFraction is (P-1)/(V*M+P-1)", () => {
    expect(Simulate.bubbleFraction(1, 1, 8)).toBe(0)
    expect(Simulate.bubbleFraction(4, 1, 8)).toBeCloseTo(3 / 11, 15)
    expect(Simulate.bubbleFraction(4, 2, 8)).toBeCloseTo(3 / 19, 15)
  })

  test("1F1B with equal forward and backward times: simulated bubble = formula", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 32 }), fc.integer({ min: 1, max: 5 }), (pp, m, t) => {
        const tl = timeline(Schedule.oneFOneB(pp, m), { forwardTime: t, backwardTime: t })
        expect(tl.bubble).toBeCloseTo(Simulate.bubbleFraction(pp, 1, m), 12)
        expect(tl.makespan).toBe((m + pp - 1) * 2 * t)
      }),
      { numRuns: 150 },
    )
  })

  test("1F1B with unequal times: the bubble is still (P-1)(tf+tb) of each rank's time", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (pp, m, tf, tb) => {
        const tl = timeline(Schedule.oneFOneB(pp, m), { forwardTime: tf, backwardTime: tb })
        expect(tl.makespan).toBe((m + pp - 1) * (tf + tb))
        expect(tl.bubble).toBeCloseTo(Simulate.bubbleFraction(pp, 1, m), 12)
      }),
      { numRuns: 100 },
    )
  })

  test("interleaved 1F1B (a chunk taking 1/V of a stage's time): simulated bubble = formula", () => {
    fc.assert(
      fc.property(
        interleavedConfig().filter((c) => !c.forwardOnly),
        fc.integer({ min: 1, max: 3 }),
        (c, t) => {
          const s = build(c)
          const tl = timeline(s, { forwardTime: t, backwardTime: 2 * t })
          expect(tl.bubble).toBeCloseTo(Simulate.bubbleFraction(c.pp, s.vpp, c.microBatches), 12)
        },
      ),
      { numRuns: 100 },
    )
  })
})

describe("timelines", () => {
  test("computes never overlap on a rank and follow every data dependency", () => {
    fc.assert(
      fc.property(anyConfig, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 3 }), (c, tf, tb) => {
        const s = build(c)
        const tl = timeline(s, { forwardTime: tf, backwardTime: tb })
        const end = new Map<string, number>()
        const start = new Map<string, number>()
        tl.ranks.forEach((spans, p) => {
          let clock = 0
          for (const x of spans) {
            expect(x.start).toBeGreaterThanOrEqual(clock)
            expect(x.end - x.start).toBe(x.action._tag === "forward" ? tf : tb)
            clock = x.end
            const stage = x.action.chunk * c.pp + p
            const key = `${x.action._tag}:${x.action.microBatch}:${stage}`
            end.set(key, x.end)
            start.set(key, x.start)
          }
          expect(spans.map((x) => x.action)).toEqual(A.computes(s.ranks[p]!))
        })
        const last = c.pp * s.vpp - 1
        for (const [key, t0] of start) {
          const [tag, mb, st] = key.split(":")
          const stage = Number(st)
          if (tag === "forward" && stage > 0) expect(t0).toBeGreaterThanOrEqual(end.get(`forward:${mb}:${stage - 1}`)!)
          if (tag === "backward") {
            expect(t0).toBeGreaterThanOrEqual(end.get(`forward:${mb}:${stage}`)!)
            if (stage < last) expect(t0).toBeGreaterThanOrEqual(end.get(`backward:${mb}:${stage + 1}`)!)
          }
        }
        expect(tl.makespan).toBe(Math.max(0, ...tl.ranks.map((r) => r[r.length - 1]?.end ?? 0)))
      }),
      { numRuns: 100 },
    )
  })

  test("a schedule that cannot run returns the checker's diagnosis; bad times throw", () => {
    const s = Schedule.oneFOneB(2, 2)
    const r = Simulate.simulate(withRank(s, 1, []), { forwardTime: 1, backwardTime: 1 })
    expect(Result.isFailure(r) && r.failure._tag).toBe("Deadlock")
    expect(() => Simulate.simulate(s, { forwardTime: -1, backwardTime: 1 })).toThrow(RangeError)
    expect(timeline(Schedule.noPipelining(3), { forwardTime: 1, backwardTime: 2 }).bubble).toBe(0)
  })
})
