// A traced training job on either backend: every rank has forward, backward, collective and
// step spans, all on the clock every thread shares (epoch ms), so one collective's spans
// overlap on all its members, even when the members are different worker threads. The Chrome
// events equal a plain restatement of their rule (rows, spans, then each step's idle gaps) on
// random spans, and the JSON written in pieces is exactly the JSON of those events.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import type * as ChooseBackend from "../../src/runtime/ChooseBackend.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as Trace from "../../src/runtime/Trace.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const steps = 2
const setup: RankTrainer.TrainSetup = {
  parallel: ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 }),
  model: { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16 },
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 3,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
}

const epochNow = () => performance.timeOrigin + performance.now()

afterAll(() => ThreadsJob.shutdown())

describe("traces", () => {
  for (const backend of ["local", "threads"] satisfies Array<ChooseBackend.Name>) {
    test(`on ${backend}: forward, backward, collective and step spans for every rank, on one clock`, async () => {
      const tracer = new Trace.Tracer()
      const before = epochNow()
      const summaries = await Effect.runPromise(Train.run(setup, { steps, backend, tracer }))
      const after = epochNow()
      expect(summaries).toHaveLength(steps)
      for (let rank = 0; rank < setup.parallel.world; rank++) {
        const mine = tracer.spans.filter((s) => s.rank === rank)
        expect(
          mine.some((s) => s.category === "compute" && s.name.startsWith("forward")),
          `rank ${rank} forward`,
        ).toBe(true)
        expect(
          mine.some((s) => s.category === "compute" && s.name.startsWith("backward")),
          `rank ${rank} backward`,
        ).toBe(true)
        expect(
          mine.some((s) => s.category === "comm"),
          `rank ${rank} collectives`,
        ).toBe(true)
        expect(mine.filter((s) => s.category === "step").map((s) => s.name)).toEqual(["step 1", "step 2"])
      }
      for (const s of tracer.spans) {
        expect(s.start).toBeGreaterThanOrEqual(before)
        expect(s.end).toBeLessThanOrEqual(after)
        expect(s.end).toBeGreaterThanOrEqual(s.start)
      }
      // No member completes a collective before the last member has issued it: the i-th span of
      // one group's collective on each member overlaps all the others (1 ms for rounding).
      const byName = new Map<string, Map<number, Array<Trace.Span>>>()
      for (const s of tracer.spans.filter((s) => s.category === "comm")) {
        const perRank = byName.get(s.name) ?? new Map<number, Array<Trace.Span>>()
        perRank.set(s.rank, [...(perRank.get(s.rank) ?? []), s])
        byName.set(s.name, perRank)
      }
      let checked = 0
      for (const [name, perRank] of byName) {
        const lists = [...perRank.values()]
        if (lists.length < 2) continue
        const count = (lists[0] as Array<Trace.Span>).length
        for (const list of lists) expect(list.length, name).toBe(count)
        for (let i = 0; i < count; i++) {
          const latestStart = Math.max(...lists.map((l) => (l[i] as Trace.Span).start))
          const earliestEnd = Math.min(...lists.map((l) => (l[i] as Trace.Span).end))
          expect(latestStart, `${name} #${i}`).toBeLessThanOrEqual(earliestEnd + 1)
          checked++
        }
      }
      expect(checked).toBeGreaterThan(0)
      const chrome = tracer.toChrome((rank) => `rank ${rank}`)
      const rows = chrome.traceEvents.filter((e) => e.name === "process_name").map((e) => e.pid)
      expect(rows).toEqual([0, 1, 2, 3])
      expect(chrome.traceEvents.every((e) => e.ph === "M" || (typeof e.ts === "number" && e.ts >= 0))).toBe(true)
    }, 120_000)
  }
})

/** The rule of the Chrome events, written plainly (quadratic): the oracle of Tracer.chromeEvents. */
const chromeOracle = (spans: ReadonlyArray<Trace.Span>, origin0: number, label: (rank: number) => string): Array<Record<string, unknown>> => {
  const events: Array<Record<string, unknown>> = []
  const origin = spans.reduce((o, s) => Math.min(o, s.start), origin0)
  const us = (ms: number) => Math.round((ms - origin) * 1000)
  for (const rank of [...new Set(spans.map((s) => s.rank))].sort((a, b) => a - b)) {
    events.push({ name: "process_name", ph: "M", pid: rank, args: { name: label(rank) } })
    events.push({ name: "thread_name", ph: "M", pid: rank, tid: 0, args: { name: "compute" } })
    events.push({ name: "thread_name", ph: "M", pid: rank, tid: 1, args: { name: "communication" } })
    const mine = spans.filter((s) => s.rank === rank)
    for (const s of mine)
      events.push({ name: s.name, cat: s.category, ph: "X", ts: us(s.start), dur: Math.max(0, us(s.end) - us(s.start)), pid: rank, tid: s.category === "comm" ? 1 : 0 })
    for (const step of mine.filter((s) => s.category === "step")) {
      const inside = mine.filter((s) => s.category === "compute" && s.start >= step.start && s.end <= step.end).sort((a, b) => a.start - b.start)
      let cursor = step.start
      for (const s of [...inside, { start: step.end, end: step.end }]) {
        if (s.start - cursor > 0.01) events.push({ name: "idle", cat: "idle", ph: "X", ts: us(cursor), dur: us(s.start) - us(cursor), pid: rank, tid: 0 })
        cursor = Math.max(cursor, s.end)
      }
    }
  }
  return events
}

describe("the Chrome trace of any spans", () => {
  const span = fc
    .record({
      rank: fc.integer({ min: 0, max: 3 }),
      category: fc.constantFrom<Trace.Span["category"]>("compute", "comm", "step", "compute"),
      start: fc.integer({ min: 0, max: 400 }),
      length: fc.integer({ min: 0, max: 120 }),
      name: fc.constantFrom("forward", "backward", "allReduce dp#0 [0,1]", "step"),
    })
    .map(({ rank, category, start, length, name }): Trace.Span => ({ rank, category, name, start: 1e12 + start / 7, end: 1e12 + (start + length) / 7 }))

  test("the events follow the rule (rows, spans, idle gaps of each step), and the JSON in pieces is the JSON of the whole", () => {
    fc.assert(
      fc.property(fc.array(span, { maxLength: 80 }), fc.integer({ min: 1, max: 300 }), (spans, pieceChars) => {
        const tracer = new Trace.Tracer()
        for (const s of spans) tracer.record(s)
        const label = (rank: number) => `rank ${rank}`
        const chrome = tracer.toChrome(label)
        expect(chrome.traceEvents).toEqual(chromeOracle(spans, tracer.origin, label))
        const pieces = [...tracer.chromeJson(label, pieceChars)]
        expect(pieces.join("")).toBe(JSON.stringify(chrome))
        // Every piece but the last is at least the size asked for.
        for (const piece of pieces.slice(0, -1)) expect(piece.length).toBeGreaterThanOrEqual(pieceChars)
      }),
      { numRuns: 300 },
    )
  })
})

describe("a trace of a window of steps (--trace-steps)", () => {
  test("a rank's spans are kept with its step when the step (counting from 1) lies in the window, whatever the interleaving of ranks", () => {
    const rankSteps = fc.array(fc.array(fc.constantFrom("compute", "comm"), { maxLength: 4 }), { minLength: 1, maxLength: 8 })
    fc.assert(
      fc.property(
        fc.array(rankSteps, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.nat(), { maxLength: 200 }),
        (ranks, first, width, picks) => {
          const window = { first, last: first + width }
          // Each rank's spans in order: its steps' spans, each step closed by its step span.
          const streams = ranks.map((steps, rank) =>
            steps.flatMap((cats, k) => [
              ...cats.map(
                (category, j): Trace.Span => ({ rank, name: `${category} ${k + 1}.${j}`, category: category as Trace.Span["category"], start: k * 10 + j, end: k * 10 + j + 1 }),
              ),
              { rank, name: `step ${k + 1}`, category: "step" as const, start: k * 10, end: k * 10 + 9 },
            ]),
          )
          const tracer = new Trace.Tracer(window)
          const at = streams.map(() => 0)
          let p = 0
          while (at.some((i, r) => i < (streams[r] as Array<Trace.Span>).length)) {
            const open = at.flatMap((i, r) => (i < (streams[r] as Array<Trace.Span>).length ? [r] : []))
            const r = open[(picks[p++] ?? 0) % open.length] as number
            tracer.record((streams[r] as Array<Trace.Span>)[at[r] as number] as Trace.Span)
            at[r] = (at[r] as number) + 1
          }
          for (const [rank, stream] of streams.entries()) {
            const kept = stream.filter((s) => {
              const k = Number(s.name.split(" ")[1]?.split(".")[0])
              return k >= window.first && k <= window.last
            })
            expect(tracer.spans.filter((s) => s.rank === rank)).toEqual(kept)
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  test("--trace-steps: FIRST:LAST from 1, and only with --trace", () => {
    expect(Trace.stepWindowOf(undefined, false)).toBeUndefined()
    expect(Trace.stepWindowOf("10:12", true)).toEqual({ first: 10, last: 12 })
    expect(Trace.stepWindowOf(" 3:3 ", true)).toEqual({ first: 3, last: 3 })
    for (const bad of ["0:2", "3:2", "a:b", "2", "1:2:3", "-1:2"]) expect(() => Trace.stepWindowOf(bad, true)).toThrow("is not a window of steps FIRST:LAST")
    expect(() => Trace.stepWindowOf("1:2", false)).toThrow("says which steps --trace records, but there is no --trace")
  })
})
