// Every backend runs the same rank program described as data: results in rank order, each
// rank's reports in its order before the job ends, log records through the job's logger with
// the rank's coordinates, one failing rank naming itself; unknown backend names are typed
// errors that list the known ones.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Writable } from "node:stream"
import { pino } from "pino"
import { afterAll, describe, expect, test } from "vitest"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Backend from "../../src/runtime/Backend.js"
import * as ChooseBackend from "../../src/runtime/ChooseBackend.js"
import type { RankFailed } from "../../src/runtime/JobError.js"
import * as RankProgram from "../../src/runtime/RankProgram.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"

const programs = new URL("./programs.ts", import.meta.url)
const world = 4

const runOn = (name: ChooseBackend.Name, spec: Backend.JobSpec) => Effect.runPromiseExit(Effect.provide(Backend.run(spec), ChooseBackend.layer(name)))

const failureOf = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail") as { error: unknown } | undefined
  return reason?.error
}

afterAll(() => ThreadsJob.shutdown())

describe("backends", () => {
  // The mpi and nccl backends run one rank per process: their suites start mpirun (properties/comm/mpi).
  for (const name of ChooseBackend.names.filter((n): n is ChooseBackend.InProcessName => !(ChooseBackend.perProcess as ReadonlyArray<string>).includes(n))) {
    test(`${name}: results, reports in order, logs with coordinates`, async () => {
      const reports: Array<{ rank: number; value: unknown }> = []
      const lines: Array<Record<string, unknown>> = []
      const sink = new Writable({
        write(chunk, _enc, done) {
          for (const line of String(chunk).split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line))
          done()
        },
      })
      const fold = Folding.make(ParallelConfig.make({ world, tp: 2, ep: 4, etp: 1 }))
      const exit = await runOn(name, {
        world,
        program: RankProgram.make(programs, "reportAndSum", { world, reports: 5 }),
        listener: {
          onReport: (rank, value) => reports.push({ rank, value }),
          log: pino({ level: "debug" }, sink),
          place: (rank) => Folding.place(fold, rank),
        },
      })
      expect(exit).toEqual(Exit.succeed([10, 10, 10, 10]))
      for (let rank = 0; rank < world; rank++) {
        expect(reports.filter((r) => r.rank === rank).map((r) => r.value)).toEqual([0, 1, 2, 3, 4].map((i) => ({ rank, i })))
      }
      const hello = lines.filter((l) => l.msg === "hello from a rank")
      expect(hello.map((l) => l.rank).sort()).toEqual([0, 1, 2, 3])
      for (const l of hello) expect(l).toMatchObject({ reports: 5, tp: (l.rank as number) % 2, ep: l.rank, etp: 0, level: 30 })
      // Debug records of every collective, from the rank's own communicator.
      const collectives = lines.filter((l) => l.msg === "collective")
      expect(collectives.map((l) => l.rank).sort()).toEqual([0, 1, 2, 3])
      for (const c of collectives) expect(c).toMatchObject({ op: "allReduce", bytesIn: 8 })
    }, 60_000)

    test(`${name}: a failing rank ends the job naming it; the others are released`, async () => {
      const started = performance.now()
      const exit = await runOn(name, { world, timeoutMs: 20_000, program: RankProgram.make(programs, "oneFails", { world, failing: 2 }) })
      const error = failureOf(exit) as RankFailed | undefined
      expect(error?._tag).toBe("RankFailed")
      expect(error?.rank).toBe(2)
      expect(error?.message).toContain("ran out of patience")
      expect(performance.now() - started).toBeLessThan(15_000)
    }, 60_000)

    test(`${name}: a missing export and args that cannot be cloned are reported before any rank runs`, async () => {
      const missing = failureOf(await runOn(name, { world: 2, program: RankProgram.make(programs, "notAProgram", {}) })) as RankFailed | undefined
      expect(missing?._tag).toBe("RankFailed")
      expect(missing?.message).toContain('no function export "notAProgram" (function exports: oneFails, reportAndSum)')
      const uncloneable = await runOn(name, { world: 2, program: RankProgram.make(programs, "reportAndSum", { f: () => 1 }) })
      expect(Exit.isFailure(uncloneable)).toBe(true)
      expect(ThreadsJob.liveThreads().length).toBeLessThanOrEqual(ThreadsJob.idleThreads().length)
    }, 60_000)
  }

  test("an unknown backend name is a typed error listing the known ones", async () => {
    const exit = await runOn("gloo" as ChooseBackend.Name, { world: 1, program: RankProgram.make(programs, "reportAndSum", { world: 1, reports: 0 }) })
    const error = failureOf(exit) as ChooseBackend.UnknownBackend
    expect(error._tag).toBe("UnknownBackend")
    expect(error.message).toBe('unknown backend "gloo" (known: local, local-zero-copy, threads, threads-zero-copy, mpi, nccl)')
    expect(ChooseBackend.isName("threads")).toBe(true)
    expect(ChooseBackend.isName("gloo")).toBe(false)
  })
})
