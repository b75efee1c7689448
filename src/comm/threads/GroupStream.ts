/**
 * GroupStream: one rank's collectives on one group, as they go through the group's control
 * block (ControlBlock): queued, published (descriptor, reader count, issued count), decided by
 * the members themselves (Meeting: own arguments and agreement on arrival, Verdict once all
 * are there, Timeout past the deadline; one member decides the slot for all and rings the
 * others), then read: this rank reads every member's part straight from its shared buffer and
 * computes its own output (Collective.outputFor; a large allReduce is shared out slice by
 * slice, Cooperative.ts) and counts itself off every part. In zero-copy mode the owner
 * completes only once every reader is done with its tensor (draining). Parts are published in
 * sequence order; a slot is reused once its previous round has been read by everyone.
 */
import * as Effect from "effect/Effect"
import * as Collective from "../Collective.js"
import * as CommError from "../CommError.js"
import * as Group from "../Group.js"
import type { Reply } from "../Reply.js"
import type * as DType from "../../tensor/DType.js"
import * as Chunks from "./Chunks.js"
import { type ControlBlock, type Placement, slots } from "./ControlBlock.js"
import * as Cooperative from "./Cooperative.js"
import type { Doorbells } from "./Doorbell.js"
import * as Meeting from "./Meeting.js"
import { type Counter, readersSlot } from "./Protocol.js"
import type { Registry } from "./Registry.js"

/**
 * A collective's result as its rank's fiber receives it.
 * @category models
 */
export type Result = Effect.Effect<Collective.Output, CommError.CommError>

/**
 * One collective of this rank on the group.
 * @category models
 */
export interface Op {
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
  /** The watchdog tick from which a wait for the others fails the collective. */
  deadline: number
  /** Zero-copy: the result, kept while this rank's readers finish. */
  result: Result | undefined
  stage: "queued" | "published" | "reading" | "together" | "draining" | "done"
}

/**
 * What a stream needs from its rank.
 * @category models
 */
export interface StreamContext {
  readonly rank: number
  readonly timeoutMs: number
  readonly doorbells: Doorbells
  readonly registry: Registry
  /** The tick at which a wait that starts now has lasted the timeout. */
  readonly deadline: () => number
  /** Asks the rank for one more round over its streams. */
  readonly pump: () => void
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

/**
 * A typed view of `length` elements at `offset` of a buffer (an empty one without a buffer).
 * @category constructors
 */
export const viewOf = (dtype: DType.DType, buffer: ArrayBufferLike | undefined, offset: number, length: number): DType.Storage => {
  if (buffer === undefined) return dtype === "float32" ? new Float32Array(0) : new Float64Array(0)
  return dtype === "float32" ? new Float32Array(buffer, offset, length) : new Float64Array(buffer, offset, length)
}

// Ops whose members agree on op, dtype, shape and reduction (Collective.agrees).
const sameShape = new Set<Collective.Op>(["allReduce", "reduceScatter", "allGather", "barrier"])

/**
 * One rank's stream of collectives on one group.
 * @category models
 */
export class GroupStream {
  readonly group: Group.Group
  /** This rank's group-local index. */
  readonly me: number
  /** The group's control block (undefined until the main thread has handed it out). */
  block: ControlBlock | undefined = undefined
  readonly ops: Array<Op> = []
  /** Set when a part could not be published: every later op of the group fails with it. */
  broken: CommError.CommError | undefined = undefined
  /** Whether this rank last said, in the block, that it waits for its readers. */
  waitingForReaders = false
  /** Each member's part at the last collective this rank read (see `#part`). */
  readonly parts: Array<Part | undefined> = []
  readonly #context: StreamContext

  constructor(group: Group.Group, me: number, context: StreamContext) {
    this.group = group
    this.me = me
    this.#context = context
  }

  /** Ends every op with `error(op)` (the job closed). */
  failAll(error: (op: Op) => CommError.CommError): void {
    for (const op of [...this.ops]) this.#fail(op, error(op))
  }

  /** One round over a group's ops; returns whether some op waits for the other members. */
  step(now: number): boolean {
    const block = this.block
    if (block === undefined) return false
    let waiting = false
    // Whether some op waits for this rank's readers (see ControlBlock.setWaiting).
    let readers = false
    let publishing = true
    for (const op of [...this.ops]) {
      if (op.stage === "queued") {
        if (!publishing) break
        // Busy: marked, then checked again, so that the last reader, if it comes after, rings.
        if (block.left(op.seq, this.me) !== 0) this.#markWaiting(block)
        if (block.left(op.seq, this.me) !== 0) {
          // The slot is still read by someone (this rank is `slots` collectives ahead).
          publishing = false
          readers = true
          if (now < op.deadline) waiting = true
          else this.#stuck(op)
          continue
        }
        this.#publish(op, block)
      }
      if (op.stage === "published" && this.#settle(op, block, now)) waiting = true
      if (op.stage === "reading") this.#read(op, block)
      if (op.stage === "draining") {
        if (block.left(op.seq, this.me) !== 0) this.#markWaiting(block)
        if (block.left(op.seq, this.me) === 0) this.#finish(op, op.result as Result)
        else {
          waiting = true
          readers = true
        }
      }
    }
    if (!readers && this.waitingForReaders) {
      block.setWaiting(this.me, false)
      this.waitingForReaders = false
    }
    return waiting
  }

  #markWaiting(block: ControlBlock): void {
    if (this.waitingForReaders) return
    block.setWaiting(this.me, true)
    this.waitingForReaders = true
  }

  #publish(op: Op, block: ControlBlock): void {
    const chunk = op.chunk !== undefined
    const id = op.buffer === undefined ? -1 : this.#context.registry.share(op.buffer, this.group.ranks, this.#context.rank)
    const out = op.out === undefined ? undefined : { length: op.out.length, dtype: op.signature.dtype }
    const own = Meeting.ownProblem(this.group, this.me, op.signature)
    if (own !== undefined && block.decide(op.seq, own) === "failed") this.#ringOthers()
    try {
      block.publish(op.seq, this.me, op.signature, out, { buffer: id, offset: op.offset, length: op.length, chunk })
    } catch (error) {
      const e = CommError.thrown({ group: Group.format(this.group), op: op.signature.op, seq: op.seq, rank: this.#context.rank, ranks: [this.#context.rank] }, error)
      this.broken = e
      return this.#fail(op, e)
    }
    op.stage = "published"
    op.deadline = this.#context.deadline()
    // Nobody is rung for an arrival: the members wait for the decision, and the member that
    // finds everyone there decides (`#settle`) and rings them.
    if (block.state(op.seq) !== "open") return
    const failure = Meeting.onArrival(block, this.group, op.seq, this.me)
    if (failure !== undefined && block.decide(op.seq, failure) === "failed") this.#ringOthers()
  }

  /** Waits for, or makes, the decision of a published op; returns whether it still waits. */
  #settle(op: Op, block: ControlBlock, now: number): boolean {
    let state = block.state(op.seq)
    if (state === "open") {
      if (Meeting.allArrived(block, op.seq)) state = block.decide(op.seq, Meeting.verdict(block, this.group, op.seq))
      else if (now >= op.deadline) state = block.decide(op.seq, Meeting.timedOut(block, this.group, op.seq, op.signature.op, this.#context.timeoutMs))
      else return true
      if (state === "ok" || state === "failed") this.#ringOthers()
    }
    switch (state) {
      case "ok":
        op.stage = "reading"
        return false
      case "failed":
        this.#fail(op, Meeting.errorOf(block.failure(op.seq), this.group, op.seq, this.me))
        return false
      case "stale":
        this.#fail(op, this.#errorOf(op, "Timeout", [], "this rank arrived after the collective had failed and the others had moved on"))
        return false
      default:
        // Another member is writing the decision; it rings when done.
        return true
    }
  }

  // An op that could not even publish: its slot stayed busy past the timeout.
  #stuck(op: Op): void {
    const detail = `waited ${this.#context.timeoutMs} ms for the members to finish reading collective #${op.seq - slots} of this group (one of them is stuck or gone)`
    const e = this.#errorOf(op, "Timeout", [], detail)
    this.broken = e
    for (const later of [...this.ops]) if (later.stage === "queued") this.#fail(later, CommError.forOp(e, later.seq, later.signature.op))
  }

  /** Reads every member's part and computes this rank's output (once the peers' buffers are known). */
  #read(op: Op, block: ControlBlock): void {
    const n = this.group.ranks.length
    const parts: Array<Part> = new Array(n)
    for (let j = 0; j < n; j++) {
      const p = block.placement(op.seq, j)
      let buffer: SharedArrayBuffer | undefined
      if (j === this.me) buffer = op.buffer
      else if (p.buffer >= 0) {
        buffer = this.#context.registry.lookup(this.group.ranks[j] as number, p.buffer)
        // Its message is on the way: the peer posted it before publishing.
        if (buffer === undefined) return
      }
      parts[j] = this.#part(j, buffer, p, op.signature.dtype)
    }
    // Members agree on everything these ops read but the data: this rank's signature serves all.
    const uniform = sameShape.has(op.signature.op)
    const cs = parts.map((part, j): Collective.Contribution => {
      const sig = j === this.me || uniform ? op.signature : block.signature(op.seq, j, this.group.ranks[j] as number)
      return Collective.contribution(sig, part.view)
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
        this.me,
        op.out,
      ).then(
        (output) => this.#afterRead(op, block, parts, Effect.succeed(output)),
        (error: unknown) => this.#afterRead(op, block, parts, Effect.fail(this.#badInput(op, error))),
      )
      return
    }
    let result: Result
    try {
      result = Effect.succeed(Collective.outputFor(cs, this.me, op.out))
    } catch (error) {
      result = Effect.fail(this.#badInput(op, error))
    }
    this.#afterRead(op, block, parts, result)
  }

  // Member j's part as this rank reads it: its view and, for a pooled chunk, its reader count
  // (kept from the last collective when the part lies where it lay then: the usual case).
  #part(j: number, buffer: SharedArrayBuffer | undefined, p: Placement, dtype: DType.DType): Part {
    const last = this.parts[j]
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
    this.parts[j] = part
    return part
  }

  #badInput(op: Op, error: unknown): CommError.CommError {
    return CommError.thrown({ group: Group.format(this.group), op: op.signature.op, seq: op.seq, rank: this.#context.rank, ranks: [] }, error)
  }

  /** The error of `op` on this rank's stream of this group. */
  #errorOf(op: Op, reason: CommError.Reason, ranks: ReadonlyArray<number>, detail: string): CommError.CommError {
    return CommError.make({ reason, group: Group.format(this.group), op: op.signature.op, seq: op.seq, rank: this.#context.rank, ranks, detail })
  }

  // Counts this rank off every part (waking owners that waited for their last reader), then
  // answers, or in zero-copy mode waits for this rank's own readers first.
  #afterRead(op: Op, block: ControlBlock, parts: ReadonlyArray<Part>, result: Result): void {
    if (op.stage === "done") return
    for (const part of parts) if (part.header !== undefined) Atomics.sub(part.header, readersSlot, 1)
    for (let j = 0; j < this.group.ranks.length; j++)
      if (block.readDone(op.seq, j) && j !== this.me && block.waiting(j)) this.#context.doorbells.ring(this.group.ranks[j] as number)
    const drain = op.chunk === undefined && op.buffer !== undefined
    if (!drain || block.left(op.seq, this.me) === 0) return this.#finish(op, result)
    op.stage = "draining"
    op.result = result
    this.#context.pump()
  }

  #finish(op: Op, result: Result): void {
    op.stage = "done"
    const i = this.ops.indexOf(op)
    if (i >= 0) this.ops.splice(i, 1)
    op.reply.done(result)
  }

  #fail(op: Op, error: CommError.CommError): void {
    if (op.stage === "done") return
    // Nobody reads a part of a failed collective: its chunk and slot are free again.
    if (op.chunk !== undefined) Chunks.clear(op.chunk)
    if (op.stage !== "queued" && this.block !== undefined) this.block.clearLeft(op.seq, this.me)
    this.#finish(op, Effect.fail(error))
  }

  #ringOthers(): void {
    const rank = this.#context.rank
    for (const r of this.group.ranks) if (r !== rank) this.#context.doorbells.ring(r)
  }
}
