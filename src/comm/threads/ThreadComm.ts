/**
 * ThreadComm: the transport of one rank of a threads job, inside the rank's worker. Its
 * collectives meet the other members' in shared memory and nowhere else.
 *
 * `enter` snapshots the tensor into a pooled shared chunk (or, in zero-copy mode, names the
 * tensor's own SharedArrayBuffer) and publishes the part in the group's control block
 * (ControlBlock: descriptor, reader count, issued count), then rings the other members'
 * doorbells. The members check the rules themselves (Meeting: own arguments and agreement on
 * arrival, Verdict once all are there, Timeout past the deadline) and one of them decides the
 * slot for all. Once it is ok, each member reads the others' parts straight from their shared
 * buffers and computes its own output (Collective.outputFor; a large allReduce is shared out
 * slice by slice, Cooperative.ts), then counts itself off every part. In zero-copy mode the
 * owner completes only once every reader is done with its tensor. p2p messages go to the peer
 * over the pair's direct channel as transferred ArrayBuffers, into its Inbox. Sequence numbers,
 * guards and p2p receives are the Endpoint's, as on every transport.
 *
 * A rank with nothing ready waits on its doorbell with Atomics.waitAsync (Doorbell), never
 * blocking its event loop: its other fibers go on computing while collectives are in flight.
 * The main thread only hands out control blocks, once per group, and supervises.
 */
import { availableParallelism } from "node:os"
import type { MessagePort } from "node:worker_threads"
import * as Effect from "effect/Effect"
import * as Collective from "../Collective.js"
import * as CommError from "../CommError.js"
import type { CommunicatorShape, Request } from "../Communicator.js"
import * as Endpoint from "../Endpoint.js"
import * as Group from "../Group.js"
import { Inbox } from "../Inbox.js"
import { copyInto } from "../Kernels.js"
import { Reply } from "../Reply.js"
import * as Verdict from "../Verdict.js"
import type * as DType from "../../tensor/DType.js"
import * as Tensor from "../../tensor/Tensor.js"
import * as Chunks from "./Chunks.js"
import { ControlBlock, type Placement, slots } from "./ControlBlock.js"
import * as Cooperative from "./Cooperative.js"
import { Doorbells } from "./Doorbell.js"
import * as Meeting from "./Meeting.js"
import { type Counter, type PeerMessage, readersSlot, type ToMain } from "./Protocol.js"
import { Registry } from "./Registry.js"

/**
 * How a rank's communicator reaches the main thread.
 * @category models
 */
export type PostToMain = (message: ToMain) => void

/**
 * Options of one rank's communicator.
 * @category models
 */
export interface ThreadCommOptions {
  readonly job: number
  readonly rank: number
  readonly world: number
  readonly timeoutMs: number
  /** Snapshot contributions (default behaviour of the local backend); false reads SAB tensors in place. */
  readonly copy: boolean
  readonly post: PostToMain
  /** The rank's chunk pool (kept across jobs by a pooled worker). */
  readonly chunks: Chunks.ChunkPool
  /** The job's doorbells (Doorbell). */
  readonly doorbells: SharedArrayBuffer
  /** The direct channel to each other rank. */
  readonly peers: ReadonlyArray<MessagePort | undefined>
}

type Result = Effect.Effect<Collective.Output, CommError.CommError>

interface Op {
  readonly seq: number
  /** This rank's whole signature (its own lists untruncated: its own-argument check reads them). */
  readonly signature: Collective.Signature
  readonly reply: Reply<Collective.Output, CommError.CommError>
  /** This rank's part: the shared buffer it lies in (undefined: no data), offset and length. */
  readonly buffer: SharedArrayBuffer | undefined
  readonly offset: number
  readonly length: number
  /** The pooled chunk holding the part (copying mode). */
  readonly chunk: Counter | undefined
  /** The receive buffer the program gave, if any. */
  readonly out: DType.Storage | undefined
  /** The watchdog tick (`#tick`) from which a wait for the others fails the collective. */
  deadline: number
  /** Zero-copy: the result, kept while this rank's readers finish. */
  result: Result | undefined
  stage: "queued" | "published" | "reading" | "together" | "draining" | "done"
}

/** A member's part as this rank reads it. */
interface Part {
  readonly buffer: SharedArrayBuffer | undefined
  readonly offset: number
  readonly dtype: DType.DType
  readonly chunk: boolean
  readonly view: DType.Storage
  /** A pooled chunk's reader count (Cooperative reads it), and the view that takes one off. */
  readonly counter: Counter | undefined
  readonly header: Int32Array | undefined
}

interface Stream {
  readonly group: Group.Group
  /** This rank's group-local index. */
  readonly me: number
  block: ControlBlock | undefined
  readonly ops: Array<Op>
  /** Set when a part could not be published: every later op of the group fails with it. */
  broken: CommError.CommError | undefined
  /** Whether this rank last said, in the block, that it waits for its readers. */
  waitingForReaders: boolean
  /** Each member's part at the last collective this rank read (see `#part`). */
  readonly parts: Array<Part | undefined>
}

const viewOf = (dtype: DType.DType, buffer: ArrayBufferLike | undefined, offset: number, length: number): DType.Storage => {
  if (buffer === undefined) return dtype === "float32" ? new Float32Array(0) : new Float64Array(0)
  return dtype === "float32" ? new Float32Array(buffer, offset, length) : new Float64Array(buffer, offset, length)
}

/**
 * How long a rank polls before it waits on its doorbell, where every rank has a core (ms).
 * @category configuration
 */
const spinMs = 0.05

// Ops whose members agree on op, dtype, shape and reduction (Collective.agrees).
const sameShape = new Set<Collective.Op>(["allReduce", "reduceScatter", "allGather", "barrier"])

/**
 * The communicator state of one rank in one job.
 * @category models
 */
export class ThreadComm {
  readonly options: ThreadCommOptions
  readonly inbox: Inbox
  readonly #doorbells: Doorbells
  readonly #registry: Registry
  readonly #streams = new Map<string, Stream>()
  readonly #asked = new Set<string>()
  #closed: string | undefined
  #pumping = false
  #again = false
  /** Whether a doorbell wait is outstanding. */
  #asleep = false
  /** How long to spin before waiting on the doorbell, in ms (0: never; see `#spin`). */
  readonly #spinMs: number
  readonly #awake = (): void => {
    this.#asleep = false
    this.#pump()
  }
  /** Rings this rank's doorbell while ops wait, so that deadlines pass (see `#watch`). */
  #watchdog: ReturnType<typeof setInterval> | undefined
  /** Quarter timeouts counted by the watchdog: the clock of deadlines (no clock read per op). */
  #tick = 0

  constructor(options: ThreadCommOptions) {
    this.options = options
    this.inbox = new Inbox(options.rank, options.timeoutMs)
    this.#doorbells = new Doorbells(options.doorbells)
    this.#spinMs = options.world <= availableParallelism() ? spinMs : 0
    this.#registry = new Registry(options.world, (to, m) => options.peers[to]?.postMessage(m))
    options.peers.forEach((port, from) => port?.on("message", (m: PeerMessage) => this.#onPeer(from, m)))
  }

  #onPeer(from: number, m: PeerMessage): void {
    if (this.#closed !== undefined) return
    if (m.t === "p2p") return this.inbox.deliver(from, m.tag, Tensor.fromStorage(viewOf(m.dtype, m.buffer, 0, Tensor.sizeOf(m.shape)), m.shape, { device: m.device }))
    this.#registry.receive(from, m)
    if (m.t === "share") this.#pump()
  }

  /** The main thread's answer: a group's control block. */
  onGroup(key: string, buffer: SharedArrayBuffer): void {
    const s = this.#streams.get(key)
    if (s === undefined || s.block !== undefined) return
    s.block = new ControlBlock(buffer, s.group.ranks.length)
    this.#pump()
  }

  /** Ends the job for this rank: every waiting op fails with Closed. */
  close(why: string): void {
    if (this.#closed !== undefined) return
    this.#closed = why
    const rank = this.options.rank
    for (const s of this.#streams.values()) {
      for (const op of [...s.ops]) {
        this.#fail(s, op, CommError.make({ reason: "Closed", group: Group.format(s.group), op: op.signature.op, seq: op.seq, rank, ranks: [], detail: why }))
      }
    }
    this.#streams.clear()
    this.#registry.close()
    for (const port of this.options.peers) port?.close()
    this.inbox.close(why)
    this.#unwatch()
    // Ends this rank's own outstanding wait now.
    this.#doorbells.ring(rank)
  }

  #stream(group: Group.Group, me: number): Stream {
    const key = Group.key(group)
    let s = this.#streams.get(key)
    if (s === undefined) {
      s = { group, me, block: undefined, ops: [], broken: undefined, waitingForReaders: false, parts: [] }
      this.#streams.set(key, s)
      if (!this.#asked.has(key)) {
        this.#asked.add(key)
        this.options.post({ t: "group", job: this.options.job, key, size: group.ranks.length })
      }
    }
    return s
  }

  #enter(group: Group.Group, seq: number, request: Request): Result {
    const { rank, copy } = this.options
    const t = request.tensor
    // Built field by field: this runs on every collective, and spreads cost more than it does.
    const signature: { -readonly [K in keyof Collective.Signature]: Collective.Signature[K] } = { op: request.op, rank, dtype: t.dtype, shape: t.shape }
    if (request.reduce !== undefined) signature.reduce = request.reduce
    if (request.root !== undefined) signature.root = request.root
    if (request.sendSplits !== undefined) signature.sendSplits = [...request.sendSplits]
    if (request.counts !== undefined) signature.counts = [...request.counts]
    const me = Group.localRank(group, rank)
    if (me < 0) {
      return Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(group), op: request.op, seq, rank, ranks: [rank], detail: `rank ${rank} is not a member` }))
    }
    const out = request.out?.data
    if (group.ranks.length === 1) return this.#alone(group, seq, signature, t.data, out)
    const data = t.data
    let buffer: SharedArrayBuffer | undefined
    let offset = 0
    let chunk: Counter | undefined
    if (data.length === 0) buffer = undefined
    else if (!copy && data.buffer instanceof SharedArrayBuffer) {
      buffer = data.buffer
      offset = data.byteOffset
    } else {
      // The snapshot: later writes to the tensor never reach the readers.
      const placed = this.options.chunks.take(t.dtype, data.length, group.ranks.length)
      copyInto(placed.view, 0, data)
      buffer = placed.buffer
      offset = placed.offset
      chunk = placed.counter
    }
    const op: Op = { seq, signature, reply: new Reply(), buffer, offset, length: data.length, chunk, out, deadline: this.#deadline(), result: undefined, stage: "queued" }
    const s = this.#stream(group, me)
    if (s.broken !== undefined) {
      if (op.chunk !== undefined) Chunks.clear(op.chunk)
      return Effect.fail(CommError.make({ ...CommError.fields(s.broken), seq, op: request.op }))
    }
    s.ops.push(op)
    this.#pump()
    return op.reply.await
  }

  // A group of one: the rules and the semantics, with nobody to wait for.
  #alone(group: Group.Group, seq: number, signature: Collective.Signature, data: DType.Storage, out: DType.Storage | undefined): Result {
    const judged = Verdict.judge(group, seq, [signature], [out === undefined ? undefined : { length: out.length, dtype: signature.dtype }])
    if (judged !== undefined) return Effect.fail(judged(this.options.rank))
    try {
      return Effect.succeed(Collective.outputFor([{ ...signature, data }], 0, out))
    } catch (error) {
      return Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(group), op: signature.op, seq, rank: this.options.rank, ranks: [], detail: String(error) }))
    }
  }

  /**
   * Moves every op as far as it can go, then waits on the doorbell if some op waits for the
   * other members. Re-entrant calls (a reply resumes a fiber that issues the next op) only ask
   * for one more round.
   */
  #pump(): void {
    if (this.#closed !== undefined) return
    if (this.#pumping) {
      this.#again = true
      return
    }
    this.#pumping = true
    let waiting = false
    let seen = 0
    try {
      do {
        this.#again = false
        seen = this.#doorbells.value(this.options.rank)
        waiting = false
        for (const s of this.#streams.values()) if (this.#step(s)) waiting = true
      } while (this.#again && this.#closed === undefined)
    } finally {
      this.#pumping = false
    }
    if (!waiting || this.#closed !== undefined) return
    this.#watch()
    if (this.#asleep) return
    this.#asleep = true
    // After the current fiber's turn (it may go on computing): a short spin, or the doorbell.
    if (this.#spinMs > 0) queueMicrotask(() => this.#spin(seen))
    else this.#doorbells.sleep(this.options.rank, seen, this.#awake)
  }

  /**
   * Polls the doorbell for a short while before waiting on it, when every rank of the job has
   * a core of its own: a peer that arrives meanwhile costs no wake-up on either side (a wake-up
   * is a system call for the ringer and a trip through the event loop for the sleeper). With
   * more ranks than cores a spinning rank would only hold a core its peers need.
   */
  #spin(seen: number): void {
    const rank = this.options.rank
    const end = performance.now() + this.#spinMs
    for (;;) {
      for (let i = 0; i < 64; i++) if (this.#doorbells.value(rank) !== seen) return this.#awake()
      if (performance.now() >= end) return this.#doorbells.sleep(rank, seen, this.#awake)
    }
  }

  /**
   * While ops are pending, one timer per rank counts quarter timeouts and rings its own
   * doorbell, so that a deadline passes even when nobody rings (as the rendezvous's one
   * watchdog per job does; reading a clock on every op costs a system call on this VM). It
   * never keeps the thread alive on its own.
   */
  #watch(): void {
    if (this.#watchdog !== undefined) return
    const rank = this.options.rank
    this.#watchdog = setInterval(
      () => {
        this.#tick++
        // Stops once nothing is pending (not on every op: timers cost more than a tick).
        let pending = false
        for (const s of this.#streams.values()) if (s.ops.length > 0) pending = true
        if (pending) this.#doorbells.ring(rank)
        else this.#unwatch()
      },
      Math.max(1, Math.floor(this.options.timeoutMs / 4)),
    )
    this.#watchdog.unref?.()
  }

  /**
   * The tick at which a wait that starts now has lasted the timeout: 4 ticks from a watchdog
   * started now, 5 from one already running (the current quarter has partly passed).
   */
  #deadline(): number {
    const running = this.#watchdog !== undefined
    this.#watch()
    return this.#tick + (running ? 5 : 4)
  }

  #unwatch(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /** One round over a group's ops; returns whether some op waits for the other members. */
  #step(s: Stream): boolean {
    const block = s.block
    if (block === undefined) return false
    let waiting = false
    // Whether some op waits for this rank's readers (see ControlBlock.setWaiting).
    let readers = false
    const now = this.#tick
    let publishing = true
    for (const op of [...s.ops]) {
      if (op.stage === "queued") {
        if (!publishing) break
        // Busy: marked, then checked again, so that the last reader, if it comes after, rings.
        if (block.left(op.seq, s.me) !== 0) this.#markWaiting(s, block)
        if (block.left(op.seq, s.me) !== 0) {
          // The slot is still read by someone (this rank is `slots` collectives ahead).
          publishing = false
          readers = true
          if (now < op.deadline) waiting = true
          else this.#stuck(s, op)
          continue
        }
        this.#publish(s, op, block)
      }
      if (op.stage === "published" && this.#settle(s, op, block, now)) waiting = true
      if (op.stage === "reading") this.#read(s, op, block)
      if (op.stage === "draining") {
        if (block.left(op.seq, s.me) !== 0) this.#markWaiting(s, block)
        if (block.left(op.seq, s.me) === 0) this.#finish(s, op, op.result as Result)
        else {
          waiting = true
          readers = true
        }
      }
    }
    if (!readers && s.waitingForReaders) {
      block.setWaiting(s.me, false)
      s.waitingForReaders = false
    }
    return waiting
  }

  #markWaiting(s: Stream, block: ControlBlock): void {
    if (s.waitingForReaders) return
    block.setWaiting(s.me, true)
    s.waitingForReaders = true
  }

  #publish(s: Stream, op: Op, block: ControlBlock): void {
    const chunk = op.chunk !== undefined
    const id = op.buffer === undefined ? -1 : this.#registry.share(op.buffer, s.group.ranks, this.options.rank)
    const out = op.out === undefined ? undefined : { length: op.out.length, dtype: op.signature.dtype }
    const own = Meeting.ownProblem(s.group, s.me, op.signature)
    if (own !== undefined && block.decide(op.seq, own) === "failed") this.#ringOthers(s)
    try {
      block.publish(op.seq, s.me, op.signature, out, { buffer: id, offset: op.offset, length: op.length, chunk })
    } catch (error) {
      const e = CommError.make({
        reason: "BadInput",
        group: Group.format(s.group),
        op: op.signature.op,
        seq: op.seq,
        rank: this.options.rank,
        ranks: [this.options.rank],
        detail: String(error),
      })
      s.broken = e
      return this.#fail(s, op, e)
    }
    op.stage = "published"
    op.deadline = this.#deadline()
    // Nobody is rung for an arrival: the members wait for the decision, and the member that
    // finds everyone there decides (`#settle`) and rings them.
    if (block.state(op.seq) !== "open") return
    const failure = Meeting.onArrival(block, s.group, op.seq, s.me)
    if (failure !== undefined && block.decide(op.seq, failure) === "failed") this.#ringOthers(s)
  }

  /** Waits for, or makes, the decision of a published op; returns whether it still waits. */
  #settle(s: Stream, op: Op, block: ControlBlock, now: number): boolean {
    let state = block.state(op.seq)
    if (state === "open") {
      if (Meeting.allArrived(block, op.seq)) state = block.decide(op.seq, Meeting.verdict(block, s.group, op.seq))
      else if (now >= op.deadline) state = block.decide(op.seq, Meeting.timedOut(block, s.group, op.seq, op.signature.op, this.options.timeoutMs))
      else return true
      if (state === "ok" || state === "failed") this.#ringOthers(s)
    }
    switch (state) {
      case "ok":
        op.stage = "reading"
        return false
      case "failed":
        this.#fail(s, op, Meeting.errorOf(block.failure(op.seq), s.group, op.seq, s.me))
        return false
      case "stale":
        this.#fail(
          s,
          op,
          CommError.make({
            reason: "Timeout",
            group: Group.format(s.group),
            op: op.signature.op,
            seq: op.seq,
            rank: this.options.rank,
            ranks: [],
            detail: "this rank arrived after the collective had failed and the others had moved on",
          }),
        )
        return false
      default:
        // Another member is writing the decision; it rings when done.
        return true
    }
  }

  // An op that could not even publish: its slot stayed busy past the timeout.
  #stuck(s: Stream, op: Op): void {
    const e = CommError.make({
      reason: "Timeout",
      group: Group.format(s.group),
      op: op.signature.op,
      seq: op.seq,
      rank: this.options.rank,
      ranks: [],
      detail: `waited ${this.options.timeoutMs} ms for the members to finish reading collective #${op.seq - slots} of this group (one of them is stuck or gone)`,
    })
    s.broken = e
    for (const later of [...s.ops]) if (later.stage === "queued") this.#fail(s, later, CommError.make({ ...CommError.fields(e), seq: later.seq, op: later.signature.op }))
  }

  /** Reads every member's part and computes this rank's output (once the peers' buffers are known). */
  #read(s: Stream, op: Op, block: ControlBlock): void {
    const n = s.group.ranks.length
    const parts: Array<Part> = new Array(n)
    for (let j = 0; j < n; j++) {
      const p = block.placement(op.seq, j)
      let buffer: SharedArrayBuffer | undefined
      if (j === s.me) buffer = op.buffer
      else if (p.buffer >= 0) {
        buffer = this.#registry.lookup(s.group.ranks[j] as number, p.buffer)
        // Its message is on the way: the peer posted it before publishing.
        if (buffer === undefined) return
      }
      parts[j] = this.#part(s, j, buffer, p, op.signature.dtype)
    }
    // Members agree on everything these ops read but the data: this rank's signature serves all.
    const uniform = sameShape.has(op.signature.op)
    const cs = parts.map((part, j): Collective.Contribution => {
      const sig = j === s.me || uniform ? op.signature : block.signature(op.seq, j, s.group.ranks[j] as number)
      return { ...sig, data: part.view }
    })
    const counters = parts.map((part) => part.counter)
    if (
      Cooperative.usable(
        cs,
        counters,
        parts.map((part) => part.buffer),
      )
    ) {
      op.stage = "together"
      Cooperative.allReduce(
        cs,
        parts.map((part) => part.buffer as SharedArrayBuffer),
        s.me,
        op.out,
      ).then(
        (output) => this.#afterRead(s, op, block, parts, Effect.succeed(output)),
        (error: unknown) => this.#afterRead(s, op, block, parts, Effect.fail(this.#badInput(s, op, error))),
      )
      return
    }
    let result: Result
    try {
      result = Effect.succeed(Collective.outputFor(cs, s.me, op.out))
    } catch (error) {
      result = Effect.fail(this.#badInput(s, op, error))
    }
    this.#afterRead(s, op, block, parts, result)
  }

  // Member j's part as this rank reads it: its view and, for a pooled chunk, its reader count
  // (kept from the last collective when the part lies where it lay then: the usual case).
  #part(s: Stream, j: number, buffer: SharedArrayBuffer | undefined, p: Placement, dtype: DType.DType): Part {
    const last = s.parts[j]
    if (last !== undefined && last.buffer === buffer && last.offset === p.offset && last.view.length === p.length && last.chunk === p.chunk && last.dtype === dtype) return last
    const part: Part = {
      buffer,
      offset: p.offset,
      dtype,
      chunk: p.chunk,
      view: viewOf(dtype, buffer, p.offset, p.length),
      counter: p.chunk && buffer !== undefined ? { buffer, index: readersSlot } : undefined,
      header: p.chunk && buffer !== undefined ? new Int32Array(buffer, 0, readersSlot + 1) : undefined,
    }
    s.parts[j] = part
    return part
  }

  #badInput(s: Stream, op: Op, error: unknown): CommError.CommError {
    return CommError.make({ reason: "BadInput", group: Group.format(s.group), op: op.signature.op, seq: op.seq, rank: this.options.rank, ranks: [], detail: String(error) })
  }

  // Counts this rank off every part (waking owners that waited for their last reader), then
  // answers, or in zero-copy mode waits for this rank's own readers first.
  #afterRead(s: Stream, op: Op, block: ControlBlock, parts: ReadonlyArray<Part>, result: Result): void {
    if (op.stage === "done") return
    for (const part of parts) if (part.header !== undefined) Atomics.sub(part.header, readersSlot, 1)
    for (let j = 0; j < s.group.ranks.length; j++) if (block.readDone(op.seq, j) && j !== s.me && block.waiting(j)) this.#doorbells.ring(s.group.ranks[j] as number)
    const drain = op.chunk === undefined && op.buffer !== undefined
    if (!drain || block.left(op.seq, s.me) === 0) return this.#finish(s, op, result)
    op.stage = "draining"
    op.result = result
    this.#pump()
  }

  #finish(s: Stream, op: Op, result: Result): void {
    op.stage = "done"
    const i = s.ops.indexOf(op)
    if (i >= 0) s.ops.splice(i, 1)
    op.reply.done(result)
  }

  #fail(s: Stream, op: Op, error: CommError.CommError): void {
    if (op.stage === "done") return
    // Nobody reads a part of a failed collective: its chunk and slot are free again.
    if (op.chunk !== undefined) Chunks.clear(op.chunk)
    if (op.stage !== "queued" && s.block !== undefined) s.block.clearLeft(op.seq, s.me)
    this.#finish(s, op, Effect.fail(error))
  }

  #ringOthers(s: Stream): void {
    const rank = this.options.rank
    for (const r of s.group.ranks) if (r !== rank) this.#doorbells.ring(r)
  }

  /** The CommunicatorShape the rank's program sees. */
  communicator(): CommunicatorShape {
    const { rank, world } = this.options
    return Endpoint.make({
      rank,
      world,
      backend: this.options.copy ? "threads" : "threads (zero-copy)",
      inbox: this.inbox,
      closed: () => this.#closed,
      enter: (group, seq, request) => this.#enter(group, seq, request),
      post: (to, t, tag) => {
        // A private copy whose buffer moves to the receiver (transfer: no second copy).
        const copy = t.data.slice()
        const port = this.options.peers[to]
        if (port === undefined) return this.inbox.deliver(rank, tag, Tensor.fromStorage(copy, t.shape, { device: t.device }))
        const message: PeerMessage = { t: "p2p", tag, dtype: t.dtype, shape: [...t.shape], device: t.device, buffer: copy.buffer as ArrayBuffer }
        port.postMessage(message, [copy.buffer as ArrayBuffer])
      },
    })
  }
}
