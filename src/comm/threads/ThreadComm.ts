/**
 * ThreadComm: the transport of one rank of a threads job, inside the rank's worker.
 *
 * `enter` snapshots the tensor into a pooled shared chunk (or, in zero-copy mode, names the
 * tensor's own SharedArrayBuffer) and tells the coordinator (the one Rendezvous, on the main
 * thread). The coordinator answers `complete` with every member's part, and this rank computes
 * its own output from them in place (Collective.outputFor; a large allReduce is shared out
 * slice by slice, Cooperative.ts), or `fail` with the diagnosis. p2p messages go through the
 * main thread as transferred ArrayBuffers into this rank's Inbox. Sequence numbers, guards and
 * p2p receives are the Endpoint's, as on every transport.
 */
import * as Effect from "effect/Effect"
import * as Collective from "../Collective.js"
import * as CommError from "../CommError.js"
import type { CommunicatorShape, Request } from "../Communicator.js"
import * as Endpoint from "../Endpoint.js"
import * as Group from "../Group.js"
import { Inbox } from "../Inbox.js"
import { copyInto } from "../Kernels.js"
import { Reply } from "../Reply.js"
import type * as DType from "../../tensor/DType.js"
import * as Tensor from "../../tensor/Tensor.js"
import * as Chunks from "./Chunks.js"
import * as Cooperative from "./Cooperative.js"
import type { Counter, ErrorFields, Part, ToMain, ToWorker } from "./Protocol.js"

/**
 * How a rank's communicator reaches the main thread.
 * @category models
 */
export type PostToMain = (message: ToMain, transfer?: ReadonlyArray<ArrayBuffer>) => void

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
  /** The rank's chunk pool and zero-copy tickets (kept across jobs by a pooled worker). */
  readonly chunks: Chunks.ChunkPool
  readonly tickets: Chunks.Tickets
}

type Result = Effect.Effect<Collective.Output, CommError.CommError>

interface PendingOp {
  readonly group: Group.Group
  readonly seq: number
  readonly op: Collective.Op
  readonly reply: Reply<Collective.Output, CommError.CommError>
  /** The reader counter of this rank's own part (cleared if the op fails). */
  readonly own: Counter | undefined
  /** Zero-copy: the op completes only once every reader is done with this rank's tensor. */
  readonly drain: boolean
  /** The receive buffer the program gave, if any. */
  readonly out: DType.Storage | undefined
}

const viewOf = (dtype: DType.DType, buffer: ArrayBufferLike | undefined, offset: number, length: number): DType.Storage => {
  if (buffer === undefined) return dtype === "float32" ? new Float32Array(0) : new Float64Array(0)
  return dtype === "float32" ? new Float32Array(buffer, offset, length) : new Float64Array(buffer, offset, length)
}

/**
 * The communicator state of one rank in one job.
 * @category models
 */
export class ThreadComm {
  readonly options: ThreadCommOptions
  readonly inbox: Inbox
  #pending = new Map<number, PendingOp>()
  #nextId = 0
  #closed: string | undefined

  constructor(options: ThreadCommOptions) {
    this.options = options
    this.inbox = new Inbox(options.rank, options.timeoutMs)
  }

  /** The coordinator's answer: every member's part; computes this rank's output from them. */
  onComplete(id: number, parts: ReadonlyArray<Part>): void {
    const p = this.#pending.get(id)
    this.#pending.delete(id)
    let result: Result | undefined
    let together = false
    try {
      if (p !== undefined) {
        const cs = parts.map((part): Collective.Contribution => {
          if (part.counter !== undefined) Chunks.acquire(part.counter)
          const { out: _out, buffer, offset, length, counter: _counter, ...meta } = part
          return { ...meta, data: viewOf(part.dtype, buffer, offset, length) }
        })
        const j = Group.localRank(p.group, this.options.rank)
        const buffers = parts.map((part) => part.buffer)
        if (
          Cooperative.usable(
            cs,
            parts.map((part) => part.counter),
            buffers,
          )
        ) {
          together = true
          return this.#together(id, p, parts, cs, j)
        }
        result = Effect.succeed(Collective.outputFor(cs, j, p.out))
      }
    } catch (error) {
      if (p !== undefined) {
        result = Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(p.group), op: p.op, seq: p.seq, rank: this.options.rank, ranks: [], detail: String(error) }))
      }
    } finally {
      // Read or not, this rank is done with every part: the owners may reuse their chunks
      // (the cooperative path releases them itself, later).
      if (!together) for (const part of parts) if (part.counter !== undefined) Chunks.readDone(part.counter)
    }
    if (p === undefined || result === undefined) return
    if (!p.drain || p.own === undefined) return p.reply.done(result)
    // Zero-copy: the program may overwrite its tensor once it resumes; wait for the readers.
    const own = p.own
    this.#pending.set(id, p)
    void Chunks.drained(own).then(() => {
      if (this.#pending.delete(id)) p.reply.done(result)
    })
  }

  // Cooperative allReduce: asynchronous (it waits for the other members' slices); the parts
  // are released only once it has read everything.
  #together(id: number, p: PendingOp, parts: ReadonlyArray<Part>, cs: ReadonlyArray<Collective.Contribution>, j: number): void {
    this.#pending.set(id, p)
    const done = (result: Result) => {
      for (const part of parts) if (part.counter !== undefined) Chunks.readDone(part.counter)
      // Closed meanwhile: close() already answered.
      if (this.#pending.get(id) === p && this.#pending.delete(id)) p.reply.done(result)
    }
    Cooperative.allReduce(
      cs,
      parts.map((part) => part.buffer as SharedArrayBuffer),
      j,
      p.out,
    ).then(
      (output) => done(Effect.succeed(output)),
      (error: unknown) =>
        done(Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(p.group), op: p.op, seq: p.seq, rank: this.options.rank, ranks: [], detail: String(error) }))),
    )
  }

  /** The coordinator's diagnosis for op `id`. */
  onFail(id: number, error: ErrorFields): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    // A failed slot never completes, so nobody reads this rank's part.
    if (p.own !== undefined) Chunks.clear(p.own)
    p.reply.done(Effect.fail(CommError.make(error)))
  }

  /** A p2p message for this rank. */
  onMessage(m: Extract<ToWorker, { t: "message" }>): void {
    this.inbox.deliver(m.from, m.tag, Tensor.fromStorage(viewOf(m.dtype, m.buffer, 0, Tensor.sizeOf(m.shape)), m.shape, { device: m.device }))
  }

  /** Ends the job for this rank: every waiting op fails with Closed. */
  close(why: string): void {
    if (this.#closed !== undefined) return
    this.#closed = why
    const rank = this.options.rank
    for (const p of this.#pending.values()) {
      if (p.own !== undefined) Chunks.clear(p.own)
      p.reply.done(Effect.fail(CommError.make({ reason: "Closed", group: Group.format(p.group), op: p.op, seq: p.seq, rank, ranks: [], detail: why })))
    }
    this.#pending.clear()
    this.inbox.close(why)
  }

  #part(request: Request, readers: number): { part: Part; own: Counter | undefined; drain: boolean } {
    const t = request.tensor
    const meta = {
      op: request.op,
      rank: this.options.rank,
      dtype: t.dtype,
      shape: [...t.shape],
      ...(request.reduce === undefined ? {} : { reduce: request.reduce }),
      ...(request.root === undefined ? {} : { root: request.root }),
      ...(request.sendSplits === undefined ? {} : { sendSplits: [...request.sendSplits] }),
      ...(request.counts === undefined ? {} : { counts: [...request.counts] }),
      ...(request.out === undefined ? {} : { out: { length: request.out.data.length, dtype: request.out.dtype } }),
    }
    const data = t.data
    if (data.length === 0) return { part: { ...meta, buffer: undefined, offset: 0, length: 0, counter: undefined }, own: undefined, drain: false }
    if (!this.options.copy && data.buffer instanceof SharedArrayBuffer) {
      const counter = this.options.tickets.take(readers)
      return { part: { ...meta, buffer: data.buffer, offset: data.byteOffset, length: data.length, counter }, own: counter, drain: true }
    }
    const placed = this.options.chunks.take(t.dtype, data.length)
    copyInto(placed.view, 0, data)
    this.options.chunks.publish(placed, readers)
    return { part: { ...meta, buffer: placed.buffer, offset: placed.offset, length: data.length, counter: placed.counter }, own: placed.counter, drain: false }
  }

  /** The CommunicatorShape the rank's program sees. */
  communicator(): CommunicatorShape {
    const { rank, world, job, post } = this.options
    return Endpoint.make({
      rank,
      world,
      backend: this.options.copy ? "threads" : "threads (zero-copy)",
      inbox: this.inbox,
      closed: () => this.#closed,
      enter: (group, seq, request) => {
        const { part, own, drain } = this.#part(request, group.ranks.length)
        const id = this.#nextId++
        const reply = new Reply<Collective.Output, CommError.CommError>()
        this.#pending.set(id, { group, seq, op: request.op, reply, own, drain, out: request.out?.data })
        post({ t: "arrive", job, id, group: { name: group.name, ranks: [...group.ranks], key: Group.key(group) }, seq, part })
        // No timer here: the coordinator's watchdog fails the slot (the one Rendezvous).
        return reply.await
      },
      post: (to, t, tag) => {
        // A private copy whose buffer moves to the receiver (transfer: no second copy).
        const copy = t.data.slice()
        post({ t: "send", job, to, tag, dtype: t.dtype, shape: [...t.shape], device: t.device, buffer: copy.buffer as ArrayBuffer }, [copy.buffer as ArrayBuffer])
      },
    })
  }
}
