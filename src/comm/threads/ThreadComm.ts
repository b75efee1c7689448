/**
 * ThreadComm: the transport of one rank of a threads job, inside the rank's worker. Its
 * collectives meet the other members' in shared memory and nowhere else.
 *
 * `enter` snapshots the tensor into a pooled shared chunk (or, in zero-copy mode, names the
 * tensor's own SharedArrayBuffer) and hands the op to the group's stream (GroupStream), which
 * publishes it in the group's control block and takes it through the decision and the read.
 * A group's control block comes from the main thread once, on this rank's first collective on
 * the group; a group of one needs none. p2p messages go to the peer over the pair's direct
 * channel as transferred ArrayBuffers, into its Inbox; shared buffers the peers will read are
 * sent the same way once (Registry). Sequence numbers, guards and p2p receives are the
 * Endpoint's, as on every transport.
 *
 * A rank with nothing ready waits on its doorbell with Atomics.waitAsync (Doorbell), never
 * blocking its event loop: its other fibers go on computing while collectives are in flight.
 * Where the rank has a core of its own it first polls the doorbell for a few tens of microseconds. One
 * watchdog timer per rank, while ops are pending, lets deadlines pass when nobody rings.
 */
import type { MessagePort } from "node:worker_threads"
import { availableParallelism } from "node:os"
import * as Effect from "effect/Effect"
import * as Collective from "../Collective.js"
import * as CommError from "../CommError.js"
import type { CommunicatorShape, Request } from "../Communicator.js"
import * as Endpoint from "../Endpoint.js"
import * as Group from "../Group.js"
import { Inbox } from "../Inbox.js"
import { copyInto } from "../Kernels.js"
import { Reply } from "../Reply.js"
import * as SnapshotPool from "../SnapshotPool.js"
import * as Verdict from "../Verdict.js"
import type * as DType from "../../tensor/DType.js"
import * as GradAccumulator from "../../tensor/GradAccumulator.js"
import * as Tensor from "../../tensor/Tensor.js"
import { hasNative } from "../../tensor/kernels/AddInto.js"
import * as Cpu from "../../native/Cpu.js"
import * as Chunks from "./Chunks.js"
import { ControlBlock } from "./ControlBlock.js"
import { Doorbells } from "./Doorbell.js"
import type { Counter, PeerMessage, ToMain } from "./Protocol.js"
import { GroupStream, type Op, type Result, type StreamContext, viewOf } from "./GroupStream.js"
import { Registry } from "./Registry.js"
import * as SameThread from "./SameThread.js"
import type * as LocalFabric from "../LocalFabric.js"

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
  /** Poll the doorbell for a few tens of microseconds before sleeping: only where the rank has
   * a core of its own (its worker hosts no other rank and there are no more workers than cores). */
  readonly spin: boolean
  readonly post: PostToMain
  /** The rank's chunk pool (kept across jobs by a pooled worker). */
  readonly chunks: Chunks.ChunkPool
  /** The job's doorbells (Doorbell). */
  readonly doorbells: SharedArrayBuffer
  /** The worker thread of every rank. */
  readonly hosts: ReadonlyArray<number>
  /** The direct channel to each other rank. */
  readonly peers: ReadonlyArray<MessagePort | undefined>
}

/**
 * How long a rank polls before it waits on its doorbell, where every rank has a core (ms).
 * @category configuration
 */
const spinMs = 0.05

/**
 * Lends this thread's core to the kernels' pool while it sleeps on its bell (true) and takes it
 * back when it wakes (false): the pool's threads compute for the ranks still awake
 * (Cpu.poolAddBusy, whose base count runtime/threads/KernelThreads.ts sets). Nothing without the
 * addon.
 */
const lendCoreWhileAsleep = (sleeping: boolean): void => {
  if (hasNative()) Cpu.poolAddBusy(sleeping ? -1 : 1)
}

/**
 * The communicator state of one rank in one job.
 * @category models
 */
export class ThreadComm {
  readonly options: ThreadCommOptions
  readonly inbox: Inbox
  readonly #doorbells: Doorbells
  readonly #registry: Registry
  readonly #streams = new Map<string, GroupStream>()
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
  readonly #context: StreamContext
  /** What this rank shares with the ranks of its thread, and which groups meet there (by key). */
  readonly #here: SameThread.SameThread
  readonly #inThread = new Map<string, boolean>()

  constructor(options: ThreadCommOptions) {
    this.options = options
    this.inbox = new Inbox(options.rank, options.timeoutMs)
    this.#here = SameThread.join(options.job, options.rank, options.timeoutMs, options.copy)
    this.#here.inboxes.set(options.rank, this.inbox)
    this.#doorbells = new Doorbells(options.doorbells, options.hosts, this.#here.doorbells)
    // While the thread waits on its bell, its core computes for the ranks still awake.
    this.#here.doorbells.asleep ??= lendCoreWhileAsleep
    // Before it waits, the thread computes the weight gradients it queued.
    this.#here.doorbells.filler ??= GradAccumulator.waitFiller()
    this.#spinMs = options.spin ? spinMs : 0
    // Ranks sharing a thread poll as a thread (the bell), where the threads have a core each.
    const thread = options.hosts[options.rank]
    const threads = Math.max(...options.hosts) + 1
    if (options.hosts.filter((h) => h === thread).length > 1 && threads <= availableParallelism()) this.#here.doorbells.spinMs = spinMs
    this.#registry = new Registry(options.world, (to, m) => options.peers[to]?.postMessage(m))
    options.peers.forEach((port, from) => port?.on("message", (m: PeerMessage) => this.#onPeer(from, m)))
    this.#context = {
      rank: options.rank,
      timeoutMs: options.timeoutMs,
      doorbells: this.#doorbells,
      registry: this.#registry,
      deadline: () => this.#deadline(),
      pump: () => this.#pump(),
    }
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
      s.failAll((op) => CommError.make({ reason: "Closed", group: Group.format(s.group), op: op.signature.op, seq: op.seq, rank, ranks: [], detail: why }))
    }
    this.#streams.clear()
    this.#here.rendezvous.close(why)
    SameThread.leave(this.options.job, rank)
    this.#registry.close()
    for (const port of this.options.peers) port?.close()
    this.inbox.close(why)
    this.#unwatch()
    // Ends this rank's own outstanding wait now, and its thread's wait on the bell.
    this.#doorbells.ring(rank)
    this.#doorbells.release(rank)
  }

  #stream(group: Group.Group, me: number): GroupStream {
    const key = Group.key(group)
    let s = this.#streams.get(key)
    if (s === undefined) {
      s = new GroupStream(group, me, this.#context)
      this.#streams.set(key, s)
      if (!this.#asked.has(key)) {
        this.#asked.add(key)
        this.options.post({ t: "group", job: this.options.job, rank: this.options.rank, key, size: group.ranks.length })
      }
    }
    return s
  }

  #enter(group: Group.Group, seq: number, request: Request): Result {
    const { rank, copy } = this.options
    const t = request.tensor
    const signature = Endpoint.signatureOf(rank, request)
    const me = Group.localRank(group, rank)
    if (me < 0) {
      return Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(group), op: request.op, seq, rank, ranks: [rank], detail: `rank ${rank} is not a member` }))
    }
    const out = request.out?.data
    if (group.ranks.length === 1) return this.#alone(group, seq, signature, t.readHost(), out)
    if (this.#meetsInThread(group)) {
      const reply: LocalFabric.Waiter = new Reply()
      this.#here.rendezvous.arrive(group, seq, Collective.contribution(signature, copy ? SnapshotPool.copyOf(t.readHost()) : t.readHost(), out), reply)
      return reply.await
    }
    const data = t.readHost()
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
      return Effect.fail(CommError.forOp(s.broken, seq, request.op))
    }
    s.ops.push(op)
    this.#pump()
    return op.reply.await
  }

  /** Whether every member of `group` lives on this thread (then it meets in SameThread). */
  #meetsInThread(group: Group.Group): boolean {
    const key = Group.key(group)
    let inThread = this.#inThread.get(key)
    if (inThread === undefined) {
      const hosts = this.options.hosts
      const mine = hosts[this.options.rank]
      inThread = group.ranks.every((r) => hosts[r] === mine)
      this.#inThread.set(key, inThread)
    }
    return inThread
  }

  // A group of one: the rules and the semantics, with nobody to wait for.
  #alone(group: Group.Group, seq: number, signature: Collective.Signature, data: DType.Storage, out: DType.Storage | undefined): Result {
    const judged = Verdict.judge(group, seq, [signature], [out === undefined ? undefined : { length: out.length, dtype: signature.dtype }])
    if (judged !== undefined) return Effect.fail(judged(this.options.rank))
    try {
      return Effect.succeed(Collective.outputFor([Collective.contribution(signature, data)], 0, out))
    } catch (error) {
      return Effect.fail(CommError.thrown({ group: Group.format(group), op: signature.op, seq, rank: this.options.rank, ranks: [] }, error))
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
        const tick = this.#tick
        for (const s of this.#streams.values()) if (s.step(tick)) waiting = true
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
   * Polls the doorbell for a short while before waiting on it, when the rank has a core of
   * its own: a peer that arrives meanwhile costs no wake-up on either side (a wake-up
   * is a system call for the ringer and a trip through the event loop for the sleeper). With
   * more ranks than cores, or other ranks in the same worker, a spinning rank would only hold
   * a core (or an event loop) its peers need.
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

  /** The CommunicatorShape the rank's program sees. */
  communicator(): CommunicatorShape {
    const { rank, world } = this.options
    return Endpoint.make({
      rank,
      world,
      backend: this.options.copy ? "threads" : "threads (zero-copy)",
      // Copying: contributions are snapshots in pooled chunks, results this rank's own (zero-copy:
      // ranks of one worker share equal results).
      privateStorage: this.options.copy,
      inbox: this.inbox,
      closed: () => this.#closed,
      enter: (group, seq, request) => this.#enter(group, seq, request),
      post: (to, t, tag) => {
        // A private copy whose buffer moves to the receiver (transfer: no second copy).
        const copy = t.readHost().slice()
        // A rank of this thread: straight into its inbox.
        const near = this.#here.inboxes.get(to)
        if (near !== undefined) return near.deliver(rank, tag, Tensor.fromStorage(copy, t.shape, { device: t.device }))
        const port = this.options.peers[to]
        if (port === undefined) return this.inbox.deliver(rank, tag, Tensor.fromStorage(copy, t.shape, { device: t.device }))
        const message: PeerMessage = { t: "p2p", tag, dtype: t.dtype, shape: [...t.shape], device: t.device, buffer: copy.buffer as ArrayBuffer }
        port.postMessage(message, [copy.buffer as ArrayBuffer])
      },
    })
  }
}
