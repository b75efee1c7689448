/**
 * worker: the entry of a rank worker of a threads job.
 *
 * A worker serves one job at a time and may serve many in turn (the pool keeps it when a job
 * succeeds); it hosts one rank of the job or several (ThreadsJob's `workers`: ranks beyond the
 * cores share workers, as the local backend's ranks share its one thread). Per rank: `start`
 * imports the module, checks the export and awaits its `prepare` if it has one (then `loaded`),
 * `go` runs the program in this thread's Effect runtime with a ThreadComm as its Communicator
 * and an `emit` that posts events to the main thread, and reports `done` with the
 * structured-cloned result or the flattened cause; `group` brings a control block this rank
 * asked for (its collectives meet there). `close` fails every waiting op of the rank with
 * Closed, interrupts its program if it still runs, and answers `stopped` once it has. A rank's
 * program that calls process.exit is named to the main thread (`exiting`) before the thread
 * ends, so that the job fails with that rank even when the worker hosts others.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Context from "effect/Context"
import * as Fiber from "effect/Fiber"
import { parentPort } from "node:worker_threads"
import { Communicator } from "../../comm/Communicator.js"
import { ChunkPool } from "../../comm/threads/Chunks.js"
import * as Failure from "./Failure.js"
import type { ToMain, ToWorker } from "../../comm/threads/Protocol.js"
import { ThreadComm } from "../../comm/threads/ThreadComm.js"
import * as GradAccumulator from "../../tensor/GradAccumulator.js"
import * as StorageRecycler from "../../tensor/StorageRecycler.js"

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

// Kept across jobs, one per slot (the ranks a worker hosts): warm chunks are what make
// contributions cheap. Between jobs an idle worker keeps only this much per slot.
const pools: Array<ChunkPool> = []
const idleChunkBytes = 32 * 1024 * 1024
const poolOf = (slot: number): ChunkPool => (pools[slot] ??= new ChunkPool())

// The ranks this worker hosts in the current job.
const hosted = new Map<number, Current>()

const fail = (job: number, rank: number, error: unknown): void => post({ t: "done", job, rank, ok: false, failure: { kind: "die", error: Failure.flattenValue(error) } })

// process.exit from a rank's program (a fiber of it runs now): say which rank before the thread ends.
process.on("exit", (code) => {
  const fiber = Fiber.getCurrent()
  const comm = fiber === undefined ? undefined : Context.getOrUndefined(fiber.context, Communicator)
  const state = comm === undefined ? undefined : hosted.get(comm.rank)
  if (state !== undefined && !state.closed) post({ t: "exiting", job: state.job, rank: state.rank, code })
})

const start = async (m: Extract<ToWorker, { t: "start" }>): Promise<void> => {
  // A job that failed before its close arrived leaves its comms open: end them first.
  for (const [rank, other] of hosted) {
    if (other.job === m.job) continue
    other.comm.close("another job started")
    hosted.delete(rank)
  }
  const chunks = poolOf(m.slot)
  chunks.reset()
  const comm = new ThreadComm({
    job: m.job,
    rank: m.rank,
    world: m.world,
    timeoutMs: m.timeoutMs,
    copy: m.copy,
    spin: m.spin,
    post,
    chunks,
    doorbells: m.doorbells,
    hosts: m.hosts,
    peers: m.peers,
  })
  const state: Current = { job: m.job, rank: m.rank, args: m.args, comm, program: undefined, fiber: undefined, closed: false }
  hosted.set(m.rank, state)
  let module: Record<string, unknown>
  try {
    module = (await import(m.module)) as Record<string, unknown>
  } catch (error) {
    if (!state.closed) fail(m.job, m.rank, error)
    return
  }
  if (state.closed) return
  const program = module[m.export]
  if (typeof program !== "function") {
    const found = Object.keys(module).filter((k) => typeof module[k] === "function")
    return fail(m.job, m.rank, new Error(`${m.module} has no function export "${m.export}" (function exports: ${found.join(", ") || "none"})`))
  }
  const prepare = (program as Program).prepare
  if (typeof prepare === "function") {
    try {
      await prepare(m.args)
    } catch (error) {
      if (!state.closed) fail(m.job, m.rank, error)
      return
    }
    if (state.closed) return
  }
  state.program = program as Program
  post({ t: "loaded", job: m.job, rank: m.rank })
}

const report = (state: Current, exit: Exit.Exit<unknown, unknown>): void => {
  if (state.closed) return
  if (Exit.isFailure(exit)) return post({ t: "done", job: state.job, rank: state.rank, ok: false, failure: Failure.flatten(exit.cause) })
  try {
    post({ t: "done", job: state.job, rank: state.rank, ok: true, value: exit.value })
  } catch (error) {
    fail(state.job, state.rank, new Error(`the result of rank ${state.rank} cannot be sent to the main thread: ${error instanceof Error ? error.message : String(error)}`))
  }
}

const go = (state: Current): void => {
  const program = state.program
  if (program === undefined || state.closed) return
  let effect: Effect.Effect<unknown, unknown>
  try {
    const emit = (event: unknown): void => {
      if (!state.closed) post({ t: "event", job: state.job, rank: state.rank, event })
    }
    effect = Effect.provideService(program(state.rank, state.args, emit), Communicator, state.comm.communicator())
  } catch (error) {
    return fail(state.job, state.rank, error)
  }
  const fiber = Effect.runFork(effect)
  state.fiber = fiber
  fiber.addObserver((exit) => report(state, exit))
}

const close = (m: Extract<ToWorker, { t: "close" }>): void => {
  const state = hosted.get(m.rank)
  const stopped = () => post({ t: "stopped", job: m.job, rank: m.rank })
  if (state === undefined || state.job !== m.job) return stopped()
  state.closed = true
  state.comm.close(m.why)
  hosted.delete(m.rank)
  if (hosted.size === 0) {
    for (const pool of pools) pool.shrink(idleChunkBytes)
    // An idle worker keeps no tensor storage for a next job (up to StorageRecycler.capBytes):
    // a process running jobs one after another held ~12 GB at the realistic shape otherwise.
    StorageRecycler.clear()
    // Nor the weight-gradient products a failed job left queued (GradAccumulator.waitFiller).
    GradAccumulator.forgetQueued()
  }
  const fiber = state.fiber
  if (fiber === undefined || fiber.pollUnsafe() !== undefined) return stopped()
  fiber.addObserver(stopped)
  fiber.interruptUnsafe()
}

port.on("message", (m: ToWorker) => {
  const state = m.t === "start" ? undefined : hosted.get(m.rank)
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
