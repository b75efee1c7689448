/**
 * MpiSession: this process's MPI, started once (MPI_Init_thread on the addon's engine thread)
 * and ended once (MPI_Finalize, or MPI_Abort when the job failed). It turns the addon's
 * completions into callbacks on the JS thread, keeps every buffer of an op alive until the op
 * completes, keeps the process alive while ops are in flight (or while a `hold` is taken),
 * and routes received p2p messages by MPI tag: tensor frames (and announcements) to the job
 * they belong to (frames of a job that has not opened here yet wait for it; those of a closed job
 * are dropped), control frames to the one control listener (waiting until there is one), census
 * frames (questions between the ranks of a job about a collective that timed out) to that job's
 * census.
 */
import * as MpiAddon from "../../native/MpiAddon.js"
import * as Frame from "./Frame.js"

/**
 * MPI tags of the p2p communicator.
 * @category configuration
 */
const TAG = { tensor: 1, control: 2, census: 3 } as const

/** What is called when an op completes: undefined on success, else MPI's error text; `fast`: a checked op's data op ran too. */
type Done = (error: string | undefined, fast: boolean) => void

/**
 * A tensor frame's receiver for one job.
 * @category models
 */
export type TensorReceiver = (from: number, frame: Frame.Received) => void

/**
 * This process's MPI.
 * @category models
 */
export class Session {
  readonly addon: MpiAddon.MpiAddon
  readonly rank: number
  readonly size: number
  readonly provided: number
  #nextOp = 1
  #nextComm = 1
  readonly #pending = new Map<number, { readonly done: Done; readonly keep: ReadonlyArray<unknown> }>()
  #holds = 0
  #referenced = false
  #ended = false
  readonly #jobs = new Map<number, TensorReceiver>()
  readonly #early = new Map<number, Array<[number, Frame.Received]>>()
  #closedBelow = 0
  #control: ((from: number, value: unknown) => void) | undefined
  readonly #census = new Map<number, (from: number, value: unknown) => void>()
  readonly #controlQueue: Array<[number, unknown]> = []
  #tracked = 0
  readonly #quiet: Array<() => void> = []

  constructor(addon: MpiAddon.MpiAddon, world: MpiAddon.WorldInfo) {
    this.addon = addon
    this.rank = world.rank
    this.size = world.size
    this.provided = world.provided
    addon.setHandler((kind, a, b, c, fast) => {
      // Node-API drops what a native callback throws (a warning without the error): say it here.
      try {
        if (kind === 0) this.#completed(a, b, c as string, fast === true)
        else this.#received(a, b, c)
      } catch (error) {
        process.stderr.write(
          `pleat: rank ${this.rank}: an MPI ${kind === 0 ? "completion" : "message"} handler threw (please report): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        )
      }
    })
  }

  #reference(): void {
    const want = !this.#ended && (this.#holds > 0 || this.#pending.size > 0)
    if (want !== this.#referenced) this.addon.ref(want)
    this.#referenced = want
  }

  #completed(id: number, status: number, error: string, fast: boolean): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    this.#reference()
    p.done(status === 0 ? undefined : error || `MPI error class ${status}`, fast)
  }

  #received(source: number, tag: number, payload: string | ArrayBuffer): void {
    if (typeof payload === "string") return // a receive that failed: its sender's op reports the failure
    if (tag === TAG.census) {
      const value = Frame.toControl(payload) as { readonly job: number }
      return this.#census.get(value.job)?.(source, value)
    }
    if (tag === TAG.control) {
      const value = Frame.toControl(payload)
      if (this.#control === undefined) this.#controlQueue.push([source, value])
      else this.#control(source, value)
      return
    }
    const received = Frame.toTensor(payload)
    const job = received.head.job
    if (job < this.#closedBelow) return
    const receiver = this.#jobs.get(job)
    if (receiver !== undefined) return receiver(source, received)
    const early = this.#early.get(job) ?? []
    early.push([source, received])
    this.#early.set(job, early)
  }

  /** Starts an op now (`start` gets its id); `done` is called once it completes. `keep` stays referenced until then. */
  op(start: (id: number) => void, done: Done, keep: ReadonlyArray<unknown> = []): void {
    if (this.#ended) return done("MPI has ended in this process", false)
    const id = this.#nextOp++
    this.#pending.set(id, { done, keep })
    this.#reference()
    try {
      start(id)
    } catch (error) {
      this.#pending.delete(id)
      this.#reference()
      done(error instanceof Error ? error.message : String(error), false)
    }
  }

  /** A fresh communicator id (the communicator itself is made by a commCreate op). */
  commId(): number {
    return this.#nextComm++
  }

  /** Sends a tensor frame to world rank `to`. */
  sendTensor(to: number, frame: Uint8Array, done: Done): void {
    this.op((id) => this.addon.send(id, to, TAG.tensor, frame), done, [frame])
  }

  /** Sends a control value to world rank `to`. */
  sendControl(to: number, value: unknown, done: Done): void {
    const frame = Frame.control(value)
    this.op((id) => this.addon.send(id, to, TAG.control, frame), done, [frame])
  }

  /** Sends a census value (it carries its job) to world rank `to`. */
  sendCensus(to: number, value: { readonly job: number }): void {
    const frame = Frame.control(value)
    this.op(
      (id) => this.addon.send(id, to, TAG.census, frame),
      () => undefined,
      [frame],
    )
  }

  /** The census listener of `job` (undefined: none; its questions go unanswered). */
  onCensus(job: number, listener: ((from: number, value: unknown) => void) | undefined): void {
    if (listener === undefined) this.#census.delete(job)
    else this.#census.set(job, listener)
  }

  /** Receives the tensor frames of `job` (those that came early first). */
  openJob(job: number, receiver: TensorReceiver): void {
    this.#jobs.set(job, receiver)
    const early = this.#early.get(job) ?? []
    this.#early.delete(job)
    for (const [from, r] of early) receiver(from, r)
  }

  /** Stops receiving for `job` and every earlier one (their late frames are dropped). */
  closeJob(job: number): void {
    this.#jobs.delete(job)
    this.#closedBelow = Math.max(this.#closedBelow, job + 1)
    for (const j of [...this.#early.keys()]) if (j <= job) this.#early.delete(j)
  }

  /** The one listener of control values (those that came before it first). */
  onControl(listener: (from: number, value: unknown) => void): void {
    this.#control = listener
    for (const [from, value] of this.#controlQueue.splice(0)) listener(from, value)
  }

  /** Keeps the process alive until the returned release is called. */
  hold(): () => void {
    this.#holds++
    this.#reference()
    let released = false
    return () => {
      if (released) return
      released = true
      this.#holds--
      this.#reference()
    }
  }

  /**
   * Counts `work` (an engine's: an NCCL communicator's set-up or run) as in flight until it
   * settles: work left behind then ends MPI by MPI_Abort, since it may wait for a peer forever.
   */
  track<T>(work: Promise<T>): Promise<T> {
    this.#tracked++
    const done = () => {
      this.#tracked--
      if (this.#tracked === 0) for (const wake of this.#quiet.splice(0)) wake()
    }
    work.then(done, done)
    return work
  }

  /** Resolves once no tracked work is left, or after `ms`. */
  quiet(ms: number): Promise<void> {
    if (this.#tracked === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.#quiet.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Ops in flight, and tracked work not settled. */
  get inFlight(): number {
    return this.#pending.size + this.#tracked
  }

  /** Ends MPI here: MPI_Finalize, or MPI_Abort(abortCode) when it is given (the whole job ends). */
  end(abortCode?: number): void {
    if (this.#ended) return
    this.#ended = true
    this.#reference()
    this.addon.finalize(abortCode ?? -1, 2000)
  }
}

let current: Session | undefined

/**
 * This process's session, starting MPI on first use (throws when the addon is missing or
 * MPI_Init_thread fails).
 * @category constructors
 */
export const start = (): Session => {
  if (current !== undefined) return current
  const addon = MpiAddon.addon()
  const world = addon.init()
  if (world.error !== "") throw new Error(`MPI did not start: ${world.error}`)
  current = new Session(addon, world)
  return current
}

/**
 * The session, when MPI was started in this process.
 * @category getters
 */
export const running = (): Session | undefined => current
