/**
 * ThreadsJob: runs one program on every rank in worker threads, with the threads backend as
 * Communicator: one worker per rank (its own Effect runtime, its own core) while there are cores
 * for them, and beyond that blocks of consecutive ranks sharing a worker (`workers`).
 *
 * Closures cannot cross into a worker, so the program is named: a module and a named export
 * `(rank, args) => Effect<A, E, Communicator>`; `args` and the results are structured-cloned.
 * Collectives meet in shared memory and p2p messages go over a direct channel between each pair
 * of workers (the threads transport, src/comm/threads): the main thread is on no data path. It
 * starts the workers, hands out each group's control block once (on the first request of a
 * member), and supervises. Supervision is Job.run's: the job succeeds with every rank's result in
 * rank order, or fails with the first rank that failed (RankFailed, with its cause rebuilt:
 * a CommError stays a CommError). A rank fails when its program fails, when its worker
 * throws, or when its worker exits before the program finished (a worker hosting several
 * ranks charges its exit to the rank whose program called process.exit, its crash to its
 * first rank still running). Then every worker is told to
 * close (each op still waiting fails with Closed and the programs are interrupted) and, after
 * a short grace, terminated; the job returns once every thread of the job has exited. The
 * program starts only once every rank has loaded the module, so worker start-up never counts
 * against a collective's timeout.
 *
 * While the job runs, a rank may post cloneable events (its third argument, `emit`); they
 * reach `onEvent` in the order each rank posted them, before that rank's result. An export
 * may carry `prepare(args)`, which each worker awaits while it loads (to import what the
 * program needs before the job's clock starts). When the Effect running the job is
 * interrupted, the job ends as a failed one does: workers are closed, then terminated.
 *
 * Workers of a job that ended cleanly are kept (idle, unref'd) and serve later jobs: a cold
 * start costs ~0.1-0.3 s of CPU per worker. A rank module is imported once per worker, so its
 * module-level state lives on across jobs in that worker (as it does for every rank of the
 * local backend, which share one process). `copy: false` is the zero-copy mode: a tensor
 * backed by a SharedArrayBuffer (`Tensor.zeros(shape, { shared: true })`) is read in place by
 * the other members, and its owner's collective completes once they all have read it, so the
 * owner may overwrite it as soon as it resumes; other tensors are still copied. A group whose
 * members all share one worker meets in that thread as on the local backend (SameThread): in
 * zero-copy mode its members then share equal results, as local-zero-copy's do.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { availableParallelism } from "node:os"
import { MessageChannel, type MessagePort, type Worker } from "node:worker_threads"
import * as ControlBlock from "../comm/threads/ControlBlock.js"
import * as Doorbell from "../comm/threads/Doorbell.js"
import * as Failure from "./threads/Failure.js"
import * as KernelThreads from "./threads/KernelThreads.js"
import * as Pool from "./threads/Pool.js"
import type { ToMain, ToWorker } from "../comm/threads/Protocol.js"
import { RankFailed } from "./JobError.js"
import { moduleUrl } from "./RankProgram.js"

/**
 * Options of a threads job.
 * @category models
 */
export interface ThreadsJobOptions {
  readonly world: number
  /** The module holding the rank program: a URL, or a file path (relative to the cwd). */
  readonly module: string | URL
  /** The name of the export: `(rank: number, args: unknown, emit: (event: unknown) => void) => Effect<A, E, Communicator>`. */
  readonly export: string
  /** Passed to every rank (structured-cloned; a SharedArrayBuffer is shared). */
  readonly args?: unknown
  /** How long a collective or recv waits for its peers, in ms (default 30 s). */
  readonly timeoutMs?: number
  /** Snapshot contributions (default true); false reads SharedArrayBuffer tensors in place. */
  readonly copy?: boolean
  /** How long closed workers get to stop before they are terminated, in ms (default 200). */
  readonly graceMs?: number
  /** How long the ranks may take to start and load the module, in ms (default 120 s). */
  readonly startTimeoutMs?: number
  /** Receives the events the ranks post while they run. */
  readonly onEvent?: (rank: number, event: unknown) => void
  /**
   * Worker threads to run the ranks on (default: one per rank up to the cores this process
   * may use). With fewer workers than ranks, each worker hosts a block of consecutive ranks as
   * fibers of its one event loop (as the local backend hosts all of them), so a collective among
   * them costs no thread wake-up, and more ranks than cores do not take turns on the cores.
   */
  readonly workers?: number
}

/**
 * The workers a job of `world` ranks runs on when the options do not say.
 * @category configuration
 */
export const defaultWorkers = (world: number): number => Math.max(1, Math.min(world, availableParallelism()))

/**
 * The worker that hosts `rank` when `world` ranks run on `workers` workers: consecutive blocks
 * (tensor-parallel neighbours share a worker).
 * @category getters
 */
export const workerOf = (rank: number, world: number, workers: number): number => Math.floor((rank * workers) / world)

let nextJob = 1

type Settle = (effect: Effect.Effect<Array<unknown>, RankFailed>) => void

class Session {
  readonly options: ThreadsJobOptions
  readonly job = nextJob++
  readonly world: number
  /** The workers of the job, and which of them hosts each rank. */
  readonly workers: Array<Worker> = []
  readonly #host: Array<number>
  /** The rank whose program ended each worker with process.exit, when one said so. */
  readonly #exiting = new Map<number, number>()
  /** The control block of every group a member asked for, by group key. */
  readonly #blocks = new Map<string, SharedArrayBuffer>()
  readonly #results: Array<unknown>
  readonly #done: Array<boolean>
  readonly #stopped: Array<boolean>
  readonly #exited: Array<boolean>
  readonly #detach: Array<() => void> = []
  #loaded = 0
  readonly #loadedRanks: Array<boolean>
  #startTimer: ReturnType<typeof setTimeout> | undefined
  #finished = 0
  #outcome: Effect.Effect<Array<unknown>, RankFailed> | undefined
  #settle: Settle | undefined
  #closed = false
  #progress: () => void = () => undefined

  constructor(options: ThreadsJobOptions) {
    this.options = options
    const world = options.world
    if (!Number.isInteger(world) || world < 1) throw new RangeError(`world must be a positive integer, got ${world}`)
    this.world = world
    this.#results = new Array<unknown>(world)
    this.#done = new Array<boolean>(world).fill(false)
    this.#stopped = new Array<boolean>(world).fill(false)
    this.#exited = new Array<boolean>(world).fill(false)
    this.#loadedRanks = new Array<boolean>(world).fill(false)
    const count = options.workers ?? defaultWorkers(world)
    if (!Number.isInteger(count) || count < 1 || count > world) throw new RangeError(`workers must be an integer from 1 to the world (${world}), got ${count}`)
    this.#host = Array.from({ length: world }, (_, r) => workerOf(r, world, count))
    const timeoutMs = options.timeoutMs ?? 30_000
    const module = moduleUrl(options.module)
    const flavour: Pool.Flavour = Pool.fromSources || /\.[mc]?tsx?$/.test(new URL(module).pathname) ? "tsx" : "plain"
    try {
      // Checked before any worker is taken, so that nothing is left to clean up.
      structuredClone(options.args)
    } catch (error) {
      throw new TypeError(`ThreadsJob: the args cannot be sent to the workers (they must be structured-cloneable): ${error instanceof Error ? error.message : String(error)}`)
    }
    const doorbells = new SharedArrayBuffer(Doorbell.bytesFor(world, count))
    // One direct channel per pair of ranks: peers[i][j] is rank i's end towards rank j.
    const peers = Array.from({ length: world }, () => new Array<MessagePort | undefined>(world))
    for (let i = 0; i < world; i++) {
      for (let j = i + 1; j < world; j++) {
        const { port1, port2 } = new MessageChannel()
        ;(peers[i] as Array<MessagePort | undefined>)[j] = port1
        ;(peers[j] as Array<MessagePort | undefined>)[i] = port2
      }
    }
    // A rank polls before it sleeps only where it has a core of its own.
    const spin = count === world && count <= availableParallelism()
    try {
      for (let w = 0; w < count; w++) {
        const worker = Pool.take(flavour)
        this.workers.push(worker)
        this.#attach(w, worker)
      }
      for (let rank = 0; rank < world; rank++) {
        const ports = peers[rank] as Array<MessagePort | undefined>
        const start: ToWorker = {
          t: "start",
          job: this.job,
          rank,
          world,
          module,
          export: options.export,
          args: options.args,
          timeoutMs,
          copy: options.copy ?? true,
          spin,
          hosts: this.#host,
          slot: rank - this.#host.indexOf(this.#host[rank] as number),
          doorbells,
          peers: ports,
        }
        this.#post(
          rank,
          start,
          ports.filter((p): p is MessagePort => p !== undefined),
        )
      }
    } catch (error) {
      // No worker may stay behind when the job cannot start (tsx missing, args not cloneable).
      for (const off of this.#detach) off()
      for (const w of this.workers) void Pool.terminate(w)
      throw error
    }
    // A module that never finishes loading (a top-level await that hangs) must not hang the job.
    const startMs = options.startTimeoutMs ?? 120_000
    this.#startTimer = setTimeout(() => {
      const missing = this.#loadedRanks.flatMap((loaded, r) => (loaded ? [] : [r]))
      const first = missing[0] ?? 0
      this.#fail(first, Cause.die(new Error(`rank${missing.length > 1 ? "s" : ""} ${missing.join(",")} did not load ${module} within ${startMs} ms`)))
    }, startMs)
    this.#startTimer.unref()
  }

  #post(rank: number, message: ToWorker, transfer?: Array<MessagePort>): void {
    if (!this.#exited[rank]) this.workers[this.#host[rank] as number]?.postMessage(message, transfer)
  }

  /** The ranks worker `w` hosts. */
  #ranksOf(w: number): Array<number> {
    return this.#host.flatMap((h, r) => (h === w ? [r] : []))
  }

  /** The rank a failure of worker `w` itself is charged to: the first still running. */
  #culprit(w: number): number {
    const ranks = this.#ranksOf(w)
    return ranks.find((r) => !this.#done[r]) ?? (ranks[0] as number)
  }

  #attach(w: number, worker: Worker): void {
    const onMessage = (m: ToMain) => this.#onMessage(m.rank, m)
    const onError = (error: unknown) => this.#fail(this.#culprit(w), Cause.die(error))
    const onMessageError = (error: unknown) => this.#fail(this.#culprit(w), Cause.die(error))
    const onExit = (code: number) => {
      const ranks = this.#ranksOf(w)
      for (const r of ranks) this.#exited[r] = true
      if (ranks.some((r) => !this.#done[r])) {
        const rank = this.#exiting.get(w) ?? this.#culprit(w)
        const others = ranks.filter((r) => r !== rank)
        const also = others.length === 0 ? "" : ` (the worker also hosted rank${others.length > 1 ? "s" : ""} ${others.join(", ")})`
        this.#fail(rank, Cause.die(new Error(`the worker of rank ${rank} exited with code ${code} before its program finished${also}`)))
      }
      this.#progress()
    }
    worker.on("message", onMessage)
    worker.on("error", onError)
    worker.on("messageerror", onMessageError)
    worker.on("exit", onExit)
    this.#detach.push(() => {
      worker.off("message", onMessage)
      worker.off("error", onError)
      worker.off("messageerror", onMessageError)
      worker.off("exit", onExit)
    })
  }

  #onMessage(rank: number, m: ToMain): void {
    if (m.job !== this.job || !(rank >= 0 && rank < this.world)) return
    switch (m.t) {
      case "exiting":
        this.#exiting.set(this.#host[rank] as number, rank)
        return
      case "loaded":
        if (this.#loadedRanks[rank]) return
        this.#loadedRanks[rank] = true
        if (++this.#loaded < this.world || this.#closed) return
        clearTimeout(this.#startTimer)
        for (let r = 0; r < this.world; r++) this.#post(r, { t: "go", job: this.job, rank: r })
        return
      case "group": {
        if (this.#closed) return
        let block = this.#blocks.get(m.key)
        if (block === undefined) {
          block = new SharedArrayBuffer(ControlBlock.bytesFor(m.size))
          this.#blocks.set(m.key, block)
        }
        return this.#post(rank, { t: "group", job: this.job, rank, key: m.key, block })
      }
      case "done":
        if (!m.ok) return this.#fail(rank, Failure.rebuild(m.failure))
        if (this.#done[rank]) return
        this.#done[rank] = true
        this.#results[rank] = m.value
        if (++this.#finished === this.world) this.#resolve(Effect.succeed(this.#results))
        return
      case "stopped":
        this.#stopped[rank] = true
        return this.#progress()
      case "event":
        if (this.#closed) return
        try {
          return this.options.onEvent?.(rank, m.event)
        } catch (error) {
          // The listener is the driver's code: its failure ends the job like a rank's would.
          return this.#fail(rank, Cause.die(error))
        }
    }
  }

  #fail(rank: number, cause: Cause.Cause<unknown>): void {
    this.#resolve(Effect.fail(new RankFailed({ rank, cause })))
  }

  // The first outcome wins; later failures (ranks failing with Closed) are the consequence.
  #resolve(outcome: Effect.Effect<Array<unknown>, RankFailed>): void {
    if (this.#outcome !== undefined) return
    this.#outcome = outcome
    this.#settle?.(outcome)
  }

  /** Waits for the outcome. */
  readonly result: Effect.Effect<Array<unknown>, RankFailed> = Effect.callback((resume) => {
    if (this.#outcome !== undefined) resume(this.#outcome)
    else this.#settle = resume
  })

  /** Closes every worker; a clean job's workers go back to the pool, all others are terminated. */
  async shutdown(success: boolean): Promise<void> {
    const why = success ? "the job ended" : "the job failed"
    this.#closed = true
    clearTimeout(this.#startTimer)
    for (let r = 0; r < this.world; r++) this.#post(r, { t: "close", job: this.job, rank: r, why })
    const settled = (r: number) => this.#stopped[r] === true || this.#exited[r] === true
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.graceMs ?? 200)
      this.#progress = () => {
        if (this.#host.every((_, r) => settled(r))) {
          clearTimeout(timer)
          resolve()
        }
      }
      this.#progress()
    })
    this.#progress = () => undefined
    for (const off of this.#detach) off()
    await Promise.all(
      this.workers.map((worker, w) => {
        const clean = this.#ranksOf(w).every((r) => this.#stopped[r] && !this.#exited[r])
        if (success && clean) return Pool.giveBack(worker)
        return Pool.terminate(worker)
      }),
    )
  }
}

/**
 * Runs the named program on every rank in worker threads; see the file header.
 * @category constructors
 */
export const run = <A = unknown>(options: ThreadsJobOptions): Effect.Effect<Array<A>, RankFailed> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const session = new Session(options)
      KernelThreads.enter(session.workers.length)
      return session
    }),
    (session) => session.result as Effect.Effect<Array<A>, RankFailed>,
    (session, exit) => Effect.promise(() => session.shutdown(Exit.isSuccess(exit)).finally(() => KernelThreads.leave(session.workers.length))),
  )

/**
 * Runs a threads job to a Promise (for scripts and tests).
 * @category constructors
 */
export const runPromise = <A = unknown>(options: ThreadsJobOptions): Promise<Array<A>> => Effect.runPromise(run<A>(options))

/**
 * The thread ids of every live rank worker of this process (idle in the pool or in a job).
 * @category getters
 */
export const liveThreads = (): Array<number> => Pool.live()

/**
 * The thread ids of the idle pooled workers.
 * @category getters
 */
export const idleThreads = (): Array<number> => Pool.idleThreads()

/**
 * Terminates the idle pooled workers (they are unref'd, so this is only needed to reclaim
 * their memory or to count threads in tests).
 * @category constructors
 */
export const shutdown = (): Promise<void> => Pool.shutdown()
