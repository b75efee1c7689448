/**
 * worker: the entry of a rank worker of a threads job.
 *
 * A worker serves one job at a time and may serve many in turn (the pool keeps it when a job
 * succeeds). Per job: `start` imports the module, checks the export and awaits its `prepare`
 * if it has one (then `loaded`), `go` runs the program in this thread's own Effect runtime
 * with a ThreadComm as its Communicator and an `emit` that posts events to the main thread,
 * and reports `done` with the structured-cloned result or the flattened cause; `group` brings
 * a control block this rank asked for (its collectives meet there). `close` fails
 * every waiting op with Closed, interrupts the program if it still runs, and answers
 * `stopped` once it has.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { parentPort } from "node:worker_threads"
import { Communicator } from "../../comm/Communicator.js"
import { ChunkPool } from "../../comm/threads/Chunks.js"
import * as Failure from "./Failure.js"
import type { ToMain, ToWorker } from "../../comm/threads/Protocol.js"
import { ThreadComm } from "../../comm/threads/ThreadComm.js"

type Program = ((rank: number, args: unknown, emit: (event: unknown) => void) => Effect.Effect<unknown, unknown, Communicator>) & {
  readonly prepare?: (args: unknown) => Promise<void>
}

interface Current {
  readonly job: number
  readonly rank: number
  readonly args: unknown
  readonly comm: ThreadComm
  program: Program | undefined
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  closed: boolean
}

const port = parentPort
if (port === null) throw new Error("src/runtime/threads/worker is the entry of a worker thread, not a module to import")

const post = (message: ToMain): void => port.postMessage(message)

// Kept across jobs: warm chunks are what make contributions cheap. Between jobs an idle worker
// keeps only this much.
const chunks = new ChunkPool()
const idleChunkBytes = 32 * 1024 * 1024
let current: Current | undefined

const fail = (job: number, error: unknown): void => post({ t: "done", job, ok: false, failure: { kind: "die", error: Failure.flattenValue(error) } })

const start = async (m: Extract<ToWorker, { t: "start" }>): Promise<void> => {
  chunks.reset()
  // A job that failed before its close arrived leaves its comm open: end it first.
  current?.comm.close("another job started")
  const comm = new ThreadComm({ job: m.job, rank: m.rank, world: m.world, timeoutMs: m.timeoutMs, copy: m.copy, post, chunks, doorbells: m.doorbells, peers: m.peers })
  const state: Current = { job: m.job, rank: m.rank, args: m.args, comm, program: undefined, fiber: undefined, closed: false }
  current = state
  let module: Record<string, unknown>
  try {
    module = (await import(m.module)) as Record<string, unknown>
  } catch (error) {
    if (!state.closed) fail(m.job, error)
    return
  }
  if (state.closed) return
  const program = module[m.export]
  if (typeof program !== "function") {
    const found = Object.keys(module).filter((k) => typeof module[k] === "function")
    return fail(m.job, new Error(`${m.module} has no function export "${m.export}" (function exports: ${found.join(", ") || "none"})`))
  }
  const prepare = (program as Program).prepare
  if (typeof prepare === "function") {
    try {
      await prepare(m.args)
    } catch (error) {
      if (!state.closed) fail(m.job, error)
      return
    }
    if (state.closed) return
  }
  state.program = program as Program
  post({ t: "loaded", job: m.job })
}

const report = (state: Current, exit: Exit.Exit<unknown, unknown>): void => {
  if (state.closed) return
  if (Exit.isFailure(exit)) return post({ t: "done", job: state.job, ok: false, failure: Failure.flatten(exit.cause) })
  try {
    post({ t: "done", job: state.job, ok: true, value: exit.value })
  } catch (error) {
    fail(state.job, new Error(`the result of rank ${state.rank} cannot be sent to the main thread: ${error instanceof Error ? error.message : String(error)}`))
  }
}

const go = (state: Current): void => {
  const program = state.program
  if (program === undefined || state.closed) return
  let effect: Effect.Effect<unknown, unknown>
  try {
    const emit = (event: unknown): void => {
      if (!state.closed) post({ t: "event", job: state.job, event })
    }
    effect = Effect.provideService(program(state.rank, state.args, emit), Communicator, state.comm.communicator())
  } catch (error) {
    return fail(state.job, error)
  }
  const fiber = Effect.runFork(effect)
  state.fiber = fiber
  fiber.addObserver((exit) => report(state, exit))
}

const close = (m: Extract<ToWorker, { t: "close" }>): void => {
  const state = current
  if (state === undefined || state.job !== m.job) return post({ t: "stopped", job: m.job })
  state.closed = true
  state.comm.close(m.why)
  chunks.shrink(idleChunkBytes)
  current = undefined
  const fiber = state.fiber
  if (fiber === undefined || fiber.pollUnsafe() !== undefined) return post({ t: "stopped", job: m.job })
  fiber.addObserver(() => post({ t: "stopped", job: m.job }))
  fiber.interruptUnsafe()
}

port.on("message", (m: ToWorker) => {
  const state = current
  switch (m.t) {
    case "start":
      return void start(m)
    case "go":
      return state?.job === m.job ? go(state) : undefined
    case "group":
      return state?.job === m.job ? state.comm.onGroup(m.key, m.block) : undefined
    case "close":
      return close(m)
  }
})
