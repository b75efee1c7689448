/**
 * LocalFabric: the embedded transport. Every rank is a fiber in this process; contributions
 * meet in the shared Rendezvous and the results are computed in one place (Collective.compute);
 * p2p messages go straight into the receiver's Inbox.
 *
 * By default every contribution is copied when it is issued and every rank gets its own result
 * buffer, so a rank that mutates a buffer it handed over (an aliasing bug that would corrupt
 * data on a real network) cannot change what others receive. `copy: false` is the zero-copy
 * mode: contributions are read in place when the collective completes and equal results share
 * one buffer; sends hand over the sender's storage itself.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tensor from "../tensor/Tensor.js"
import * as Collective from "./Collective.js"
import type * as CommError from "./CommError.js"
import { Communicator, type CommunicatorShape, type Request } from "./Communicator.js"
import * as Endpoint from "./Endpoint.js"
import { Inbox } from "./Inbox.js"
import { Rendezvous } from "./Rendezvous.js"
import { Reply } from "./Reply.js"
import * as SnapshotPool from "./SnapshotPool.js"

/**
 * Options of the local transport.
 * @category models
 */
export interface LocalOptions {
  readonly world: number
  /** Copy contributions and results (default true); false is the zero-copy mode. */
  readonly copy?: boolean
  /** How long a collective or recv waits for its peers, in ms (default 30 s). */
  readonly timeoutMs?: number
}

/**
 * How a member of an in-process meeting is answered.
 * @category models
 */
export type Waiter = Reply<Collective.Output, CommError.CommError>

/** The contribution a request makes (copied unless zero-copy). */
const contribution = (rank: number, request: Request, copy: boolean): Collective.Contribution => {
  const data = request.tensor.readHost()
  return Collective.contribution(Endpoint.signatureOf(rank, request), copy ? SnapshotPool.copyOf(data) : data, request.out?.data, request.sendRows)
}

/**
 * The meeting place of ranks that share one thread: the last member to arrive computes every
 * member's result (equal results shared in zero-copy mode, `share`) and answers them all. The
 * local backend meets all its ranks here; the threads backend the groups whose members share
 * a worker.
 * @category constructors
 */
export const rendezvous = (timeoutMs: number, share: boolean): Rendezvous<Collective.Contribution, Waiter> =>
  new Rendezvous<Collective.Contribution, Waiter>({
    timeoutMs,
    fail: (waiter, error) => waiter.done(Effect.fail(error)),
    complete: (_group, _seq, arrivals) => {
      const outputs = Collective.compute(
        arrivals.map((a) => a.part),
        share,
      )
      // The results are computed: snapshots taken for this meeting are dead (SnapshotPool).
      for (const a of arrivals) SnapshotPool.release(a.part.data)
      arrivals.forEach((a, i) => a.waiter.done(Effect.succeed(outputs[i] as Collective.Output)))
    },
    receiveBuffer: (part) => (part.out === undefined ? undefined : { length: part.out.length, dtype: part.dtype }),
  })

/**
 * The shared state of one local job.
 * @category models
 */
export class LocalFabric {
  readonly world: number
  readonly copy: boolean
  readonly timeoutMs: number
  readonly rendezvous: Rendezvous<Collective.Contribution, Waiter>
  readonly #inboxes: Array<Inbox>
  #closed: string | undefined

  constructor(options: LocalOptions) {
    if (!Number.isInteger(options.world) || options.world < 1) throw new RangeError(`world must be a positive integer, got ${options.world}`)
    this.world = options.world
    this.copy = options.copy ?? true
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.#inboxes = Array.from({ length: this.world }, (_, rank) => new Inbox(rank, this.timeoutMs))
    this.rendezvous = rendezvous(this.timeoutMs, !this.copy)
  }

  /** Ends the job: every waiting op fails with Closed. */
  close(why = "the job ended"): void {
    this.#closed = why
    this.rendezvous.close(why)
    for (const inbox of this.#inboxes) inbox.close(why)
  }

  /** The communicator of one rank. */
  communicator(rank: number): CommunicatorShape {
    if (!Number.isInteger(rank) || rank < 0 || rank >= this.world) throw new RangeError(`rank ${rank} is outside 0..${this.world - 1}`)
    return Endpoint.make({
      rank,
      world: this.world,
      backend: this.copy ? "local" : "local (zero-copy)",
      inbox: this.#inboxes[rank] as Inbox,
      closed: () => this.#closed,
      enter: (group, seq, request) => {
        const reply: Waiter = new Reply()
        // A group of one completes inside `arrive` (its result is a fresh buffer in copying
        // mode): no other member reads the contribution later, so it needs no private copy.
        this.rendezvous.arrive(group, seq, contribution(rank, request, this.copy && group.ranks.length > 1), reply)
        return reply.await
      },
      post: (to, t, tag) => (this.#inboxes[to] as Inbox).deliver(rank, tag, this.copy ? Tensor.detachCopy(t) : Tensor.detach(t)),
      // Results come from Collective.compute over every contribution: chunks placed as copied.
      placesChunks: true,
      // Copying: contributions are snapshots and every member gets a result of its own.
      privateStorage: this.copy,
    })
  }

  /** The Communicator layer of one rank. */
  layer(rank: number): Layer.Layer<Communicator> {
    return Layer.succeed(Communicator, this.communicator(rank))
  }
}

/**
 * A new local fabric.
 * @category constructors
 */
export const make = (options: LocalOptions): LocalFabric => new LocalFabric(options)
