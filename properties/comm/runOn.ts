// Runs a rank program of scenarios.ts on any backend through the backend's own Layer (the
// Backend service every job uses): the one runner of the contract and fault suites, so that
// both suites run unchanged against every transport.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Backend from "../../src/runtime/Backend.js"
import type { RankFailed } from "../../src/runtime/JobError.js"
import * as LocalBackend from "../../src/runtime/LocalBackend.js"
import * as RankProgram from "../../src/runtime/RankProgram.js"
import * as ThreadsBackend from "../../src/runtime/ThreadsBackend.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import type * as Scenarios from "./scenarios.js"

/**
 * Every backend the suites run against. "threads" gives every rank a worker of its own, whatever
 * the cores; "threads-shared" puts the ranks on 2 workers (blocks of ranks sharing a thread, as
 * the default does where ranks outnumber the cores); "threads-zero-copy" takes the default.
 */
export const backends = ["local", "local-zero-copy", "threads", "threads-shared", "threads-zero-copy"] as const

export type BackendName = (typeof backends)[number]

export type Scenario = keyof typeof Scenarios

const module = new URL("./scenarios.ts", import.meta.url)

const sharedWorkers = 2

/** The Layer of each backend the suites run against. */
const layers: Record<BackendName, Layer.Layer<Backend.Backend>> = {
  local: LocalBackend.layer(),
  "local-zero-copy": LocalBackend.layer({ copy: false }),
  threads: ThreadsBackend.layer({ workers: 1024 }),
  "threads-shared": ThreadsBackend.layer({ workers: sharedWorkers }),
  "threads-zero-copy": ThreadsBackend.layer({ copy: false }),
}

/** The workers a threads backend of the suites gives a job of `world` ranks. */
const workersOf = (backend: BackendName, world: number): number =>
  backend === "threads" ? world : backend === "threads-shared" ? Math.min(sharedWorkers, world) : ThreadsJob.defaultWorkers(world)

/** The scenario `name` on every rank of `backend`; every rank's result in rank order. */
export const runOn = <A>(backend: BackendName, name: Scenario, world: number, args: unknown, timeoutMs = 10_000): Effect.Effect<Array<A>, RankFailed> =>
  Effect.provide(Backend.run<A>({ world, program: RankProgram.make(module, name, args), timeoutMs }), layers[backend])

/** The results of a scenario that must succeed. */
export const results = <A>(backend: BackendName, name: Scenario, world: number, args: unknown): Promise<Array<A>> => Effect.runPromise(runOn<A>(backend, name, world, args))

/** The failure of a scenario that must fail, how long the job took, and the rank threads left. */
export const failure = async (backend: BackendName, name: Scenario, world: number, args: Record<string, unknown>, timeoutMs: number) => {
  if (backend.startsWith("threads")) {
    // Warm exactly the job's workers first: timings then measure the fault handling, not thread
    // start-up, and every live thread afterwards would be one of the job's.
    await ThreadsJob.shutdown()
    await ThreadsJob.runPromise({ world, workers: workersOf(backend, world), module, export: "p2pFifo", args: { world, count: 1 } })
  }
  const started = performance.now()
  const exit = await Effect.runPromise(Effect.exit(runOn(backend, name, world, { world, ...args }, timeoutMs)))
  const ms = performance.now() - started
  if (Exit.isSuccess(exit)) throw new Error(`${name} on ${backend}: the job was expected to fail`)
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return { error: (reason as { error: RankFailed } | undefined)?.error, ms, live: ThreadsJob.liveThreads() }
}
