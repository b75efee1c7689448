// Rank actors under a driver: typed requests in order, events, collectives inside handlers,
// supervision (one failing rank ends the job naming it), per-rank loggers with coordinates.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import { Writable } from "node:stream"
import { pino } from "pino"
import { describe, expect, test } from "vitest"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as ActorJob from "../../src/runtime/ActorJob.js"
import * as Tensor from "../../src/tensor/Tensor.js"

type Protocol = {
  Add: readonly [number, number]
  AllSum: readonly [void, number]
  Fail: readonly [string, void]
}

const build = (ctx: ActorJob.RankContext<string>) =>
  Effect.sync(() => {
    let total = 0 // the actor's own state
    const group = Group.world(4)
    return {
      Add: (x: number) =>
        Effect.sync(() => {
          total += x
          ctx.emit(`rank ${ctx.rank} now ${total}`)
          return total
        }),
      AllSum: () =>
        Effect.map(Comm.allReduce(group, Tensor.fromArray([total], [1, 1], { dtype: "float64" })), (t) => Tensor.item(t)),
      Fail: (why: string) => Effect.fail(new Error(why)),
    }
  })

describe("actor jobs", () => {
  test("requests are served in order, events reach the driver, handlers run collectives", async () => {
    const result = await Effect.runPromise(
      ActorJob.run<Protocol, Error, string, { sums: Array<number>; partial: Array<number>; events: number }, unknown>({ world: 4 }, build, (refs, events) =>
        Effect.gen(function* () {
          // Tell many Adds without waiting: replies come back in request order.
          const pendings = []
          for (let i = 1; i <= 5; i++) pendings.push(yield* (refs[0] as (typeof refs)[number]).tell("Add", i))
          const partial = []
          for (const p of pendings) partial.push(yield* p)
          for (const ref of refs.slice(1)) yield* ref.ask("Add", ref.rank)
          const sums = yield* Effect.forEach(refs, (ref) => ref.ask("AllSum", undefined), { concurrency: "unbounded" })
          const seen = yield* Queue.takeAll(events)
          return { sums, partial, events: seen.length }
        }),
      ),
    )
    expect(result.partial).toEqual([1, 3, 6, 10, 15])
    expect(result.sums).toEqual([21, 21, 21, 21])
    expect(result.events).toBe(8)
  })

  test("a failing rank ends the job naming the rank; ranks stuck in a collective are released", async () => {
    const started = performance.now()
    const exit = await Effect.runPromiseExit(
      ActorJob.run<Protocol, Error, string, unknown, unknown>({ world: 4, timeoutMs: 5000 }, build, (refs) =>
        Effect.forEach(refs, (ref) => (ref.rank === 2 ? ref.ask("Fail", "rank 2 ran out of memory") : ref.ask("AllSum", undefined)), { concurrency: "unbounded" }),
      ),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    const text = Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : r._tag))) : ""
    expect(text).toContain("rank 2")
    expect(text).toContain("ran out of memory")
    expect(performance.now() - started).toBeLessThan(2000)
  })

  test("each rank logs through its own child logger with its coordinates; collectives at debug", async () => {
    const lines: Array<Record<string, unknown>> = []
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line))
        done()
      },
    })
    const config = ParallelConfig.make({ world: 4, tp: 2, ep: 4, etp: 1 })
    const fold = Folding.make(config)
    await Effect.runPromise(
      ActorJob.run<Protocol, Error, string, unknown, unknown>(
        { world: 4, log: pino({ level: "debug" }, sink), place: (rank) => Folding.place(fold, rank) },
        (ctx) => Effect.map(build(ctx), (b) => ({ ...b, Add: (x: number) => Effect.tap(b.Add(x), () => Effect.sync(() => ctx.log.info({ x }, "added"))) })),
        (refs) => Effect.forEach(refs, (ref) => Effect.andThen(ref.ask("Add", 1), ref.ask("AllSum", undefined)), { concurrency: "unbounded" }),
      ),
    )
    const added = lines.filter((l) => l.msg === "added")
    expect(added.map((l) => l.rank).sort()).toEqual([0, 1, 2, 3])
    for (const l of added) expect(l).toMatchObject({ tp: (l.rank as number) % 2, ep: l.rank, etp: 0 })
    const collectives = lines.filter((l) => l.msg === "collective")
    expect(collectives.length).toBe(4)
    for (const c of collectives) expect(c).toMatchObject({ op: "allReduce", group: "world [0,1,2,3]", bytesIn: 8 })
    expect(collectives.every((c) => typeof c.micros === "number")).toBe(true)
  })
})
