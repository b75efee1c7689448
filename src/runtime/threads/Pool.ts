/**
 * Pool: the rank workers of this process, spawned on demand and kept between jobs.
 *
 * Starting a worker costs 100-300 ms of CPU here (a fresh V8 isolate that imports Effect and,
 * from sources, registers tsx; several start together on 2 cores), far more than a typical job.
 * A worker whose job ended cleanly therefore goes back to an idle list (unref'd, so it never
 * keeps the process alive) and serves the next job; a worker of a failed job is terminated.
 *
 * Two flavours: "plain" runs compiled JS (dist/), "tsx" first registers tsx so that the worker
 * and the rank module may be TypeScript sources (under vitest or `node --import tsx`). From
 * sources every worker is "tsx". Before registering tsx a worker preloads Effect with Node's
 * own loader, because every module loaded after the hooks are registered takes a round trip
 * through the hooks thread, which the workers of the process share (measured: 8 workers start
 * in ~1.3 s instead of ~2 s).
 */
import { Worker } from "node:worker_threads"
import * as WorkerFlags from "./WorkerFlags.js"

/**
 * How a worker loads code.
 * @category models
 */
export type Flavour = "plain" | "tsx"

const here = import.meta.url

/**
 * Whether this module runs from TypeScript sources (then workers need tsx).
 * @category configuration
 */
export const fromSources: boolean = /\.ts$/.test(new URL(here).pathname)

const entry = new URL(fromSources ? "./worker.ts" : "./worker.js", here).href

const resolveOrUndefined = (specifier: string): string | undefined => {
  try {
    return import.meta.resolve(specifier)
  } catch {
    return undefined
  }
}

// pino: every rank host gives its program a logger (src/runtime/RankEvents).
const preload = ["effect/Effect", "effect/Exit", "effect/Cause", "effect/Deferred", "effect/Context", "effect/Data", "effect/Layer", "pino"]
  .map(resolveOrUndefined)
  .filter((u): u is string => u !== undefined)

// Runs as CommonJS (eval workers): loads Effect, registers tsx if asked, then the entry.
const bootstrap = `
const { workerData } = require("node:worker_threads")
;(async () => {
  await Promise.all(workerData.preload.map((u) => import(u)))
  if (workerData.tsx !== undefined) (await import(workerData.tsx)).register()
  await import(workerData.entry)
})()
`

// Whether node refuses `group` in a worker's execArgv (a V8 or process-wide option), asked of
// node itself once per group: the constructor checks the list before it starts a thread.
const refusedGroups = new Map<string, boolean>()
const refusedByWorkers = (group: WorkerFlags.FlagGroup): boolean => {
  const key = group.join("\u0000")
  const known = refusedGroups.get(key)
  if (known !== undefined) return known
  let refused = false
  try {
    void new Worker("", { eval: true, execArgv: [...group] }).terminate()
  } catch (error) {
    if ((error as { readonly code?: unknown }).code !== "ERR_WORKER_INVALID_EXEC_ARGV") throw error
    refused = true
  }
  refusedGroups.set(key, refused)
  return refused
}

// A worker's flags (WorkerFlags): inherited, or the parent's without tsx and what workers refuse.
const workerFlags = (): { readonly execArgv?: Array<string> } => {
  const argv = WorkerFlags.forWorker(process.execArgv, refusedByWorkers)
  return argv === undefined ? {} : { execArgv: [...argv] }
}

const all = new Map<Worker, Flavour>()
const idle: Array<Worker> = []

// Idle workers beyond this many are terminated when given back.
const maxIdle = 32

const spawn = (flavour: Flavour): Worker => {
  let worker: Worker
  if (flavour === "tsx") {
    const tsx = resolveOrUndefined("tsx/esm/api")
    if (tsx === undefined) throw new Error("rank modules in TypeScript need the tsx package (npm i -D tsx), or run the compiled JS from dist/")
    worker = new Worker(bootstrap, { eval: true, ...workerFlags(), workerData: { preload, tsx, entry } })
  } else {
    worker = new Worker(new URL(entry), workerFlags())
  }
  all.set(worker, flavour)
  // An idle worker that crashes only leaves the pool; jobs attach their own listeners.
  worker.on("error", () => undefined)
  worker.once("exit", () => {
    all.delete(worker)
    const i = idle.indexOf(worker)
    if (i >= 0) idle.splice(i, 1)
  })
  return worker
}

/**
 * A worker for a job: an idle one of that flavour, or a new one.
 * @category constructors
 */
export const take = (flavour: Flavour): Worker => {
  const i = idle.findIndex((w) => all.get(w) === flavour)
  const worker = i >= 0 ? (idle.splice(i, 1)[0] as Worker) : spawn(flavour)
  worker.ref()
  return worker
}

/**
 * A worker whose job ended cleanly goes back to the idle list.
 * @category constructors
 */
export const giveBack = (worker: Worker): void => {
  if (!all.has(worker)) return
  if (idle.length >= maxIdle) return void terminate(worker)
  worker.unref()
  idle.push(worker)
}

/**
 * Stops a worker; resolves once its thread has exited.
 * @category constructors
 */
export const terminate = (worker: Worker): Promise<void> =>
  all.has(worker)
    ? worker.terminate().then(
        () => undefined,
        () => undefined,
      )
    : Promise.resolve()

/**
 * The thread ids of every live worker (idle or in a job).
 * @category getters
 */
export const live = (): Array<number> => [...all.keys()].map((w) => w.threadId)

/**
 * The thread ids of the idle workers.
 * @category getters
 */
export const idleThreads = (): Array<number> => idle.map((w) => w.threadId)

/**
 * Terminates every idle worker; resolves once they have exited.
 * @category constructors
 */
export const shutdown = async (): Promise<void> => {
  await Promise.all(idle.splice(0).map(terminate))
}
