/**
 * LocalFabric: the embedded backend. Every rank is a fiber in this process; collectives meet
 * in a shared Rendezvous and p2p messages go through in-memory FIFO queues.
 *
 * By default every contribution is copied when it is issued and every rank gets its own result
 * buffer, so a rank that mutates a buffer it handed over (an aliasing bug that would corrupt
 * data on a real network) cannot change what others receive. `copy: false` is the zero-copy
 * mode: contributions are read in place when the collective completes and equal results share
 * one buffer; sends hand over the sender's storage itself.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tensor from "../tensor/Tensor.js"
import type * as Collective from "./Collective.js"
import * as CommError from "./CommError.js"
import { Communicator, type CommunicatorShape, type Request } from "./Communicator.js"
import * as Group from "./Group.js"
import { Rendezvous, type RendezvousOptions } from "./Rendezvous.js"

/**
 * Options of the local backend.
 * @category models
 */
export interface LocalOptions {
  readonly world: number
  /** Copy contributions and results (default true); false is the zero-copy mode. */
  readonly copy?: boolean
  /** How long a collective or recv waits for its peers, in ms (default 30 s). */
  readonly timeoutMs?: number
  readonly onComplete?: RendezvousOptions["onComplete"]
}

interface Mailbox {
  readonly messages: Array<Tensor.Tensor>
  readonly receivers: Array<Deferred.Deferred<Tensor.Tensor, CommError.CommError>>
  sent: number
}

/**
 * The shared state of one local job.
 * @category models
 */
export class LocalFabric {
  readonly world: number
  readonly copy: boolean
  readonly timeoutMs: number
  readonly rendezvous: Rendezvous
  #mailboxes = new Map<string, Mailbox>()
  #closed: string | undefined

  constructor(options: LocalOptions) {
    if (!Number.isInteger(options.world) || options.world < 1) throw new RangeError(`world must be a positive integer, got ${options.world}`)
    this.world = options.world
    this.copy = options.copy ?? true
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.rendezvous = new Rendezvous({
      timeoutMs: this.timeoutMs,
      share: !this.copy,
      ...(options.onComplete === undefined ? {} : { onComplete: options.onComplete }),
    })
  }

  /** Ends the job: every waiting op fails with Closed. */
  close(why = "the job ended"): void {
    this.#closed = why
    this.rendezvous.close(why)
    for (const [key, box] of this.#mailboxes) {
      for (const d of box.receivers) Deferred.doneUnsafe(d, Effect.fail(CommError.make({ reason: "Closed", group: `p2p ${key}`, op: "recv", seq: -1, rank: -1, ranks: [], detail: why })))
    }
    this.#mailboxes.clear()
  }

  #mailbox(from: number, to: number, tag: string): Mailbox {
    const key = `${from}->${to}:${tag}`
    let box = this.#mailboxes.get(key)
    if (box === undefined) {
      box = { messages: [], receivers: [], sent: 0 }
      this.#mailboxes.set(key, box)
    }
    return box
  }

  /** The communicator of one rank. */
  communicator(rank: number): CommunicatorShape {
    if (!Number.isInteger(rank) || rank < 0 || rank >= this.world) throw new RangeError(`rank ${rank} is outside 0..${this.world - 1}`)
    const sequence = new Map<string, number>()
    const checkPeer = (op: string, peer: number) =>
      Number.isInteger(peer) && peer >= 0 && peer < this.world
        ? Effect.void
        : Effect.fail(CommError.make({ reason: "BadInput", group: `p2p ${rank}->${peer}`, op, seq: -1, rank, ranks: [peer], detail: `rank ${peer} is outside 0..${this.world - 1}` }))
    const issue = (group: Group.Group, request: Request) =>
      Effect.sync(() => {
        const key = Group.key(group)
        const seq = sequence.get(key) ?? 0
        sequence.set(key, seq + 1)
        const t = request.tensor
        const contribution: Collective.Contribution = {
          op: request.op,
          rank,
          dtype: t.dtype,
          shape: t.shape,
          data: this.copy ? t.data.slice() : t.data,
          ...(request.reduce === undefined ? {} : { reduce: request.reduce }),
          ...(request.root === undefined ? {} : { root: request.root }),
          ...(request.sendSplits === undefined ? {} : { sendSplits: [...request.sendSplits] }),
          ...(request.counts === undefined ? {} : { counts: [...request.counts] }),
          ...(request.out === undefined ? {} : { out: request.out.data }),
        }
        return { await: this.rendezvous.arrive(group, seq, contribution) }
      })
    const send = (to: number, t: Tensor.Tensor, tag = "") =>
      Effect.flatMap(checkPeer("send", to), () =>
        Effect.suspend(() => {
          if (this.#closed !== undefined) return Effect.fail(CommError.make({ reason: "Closed", group: `p2p ${rank}->${to}`, op: "send", seq: -1, rank, ranks: [], detail: this.#closed }))
          const box = this.#mailbox(rank, to, tag)
          const message = this.copy ? Tensor.fromArray(t.data, t.shape, { dtype: t.dtype, device: t.device }) : Tensor.detach(t)
          box.sent++
          const receiver = box.receivers.shift()
          if (receiver !== undefined) Deferred.doneUnsafe(receiver, Effect.succeed(message))
          else box.messages.push(message)
          return Effect.void
        }),
      )
    const recv = (from: number, tag = "") =>
      Effect.flatMap(checkPeer("recv", from), () =>
        Effect.suspend(() => {
          if (this.#closed !== undefined) return Effect.fail(CommError.make({ reason: "Closed", group: `p2p ${from}->${rank}`, op: "recv", seq: -1, rank, ranks: [], detail: this.#closed }))
          const box = this.#mailbox(from, rank, tag)
          const ready = box.messages.shift()
          if (ready !== undefined) return Effect.succeed(ready)
          const d = Deferred.makeUnsafe<Tensor.Tensor, CommError.CommError>()
          box.receivers.push(d)
          return Deferred.await(d).pipe(
            Effect.timeoutOrElse({
              duration: this.timeoutMs,
              orElse: () =>
                Effect.suspend(() => {
                  const i = box.receivers.indexOf(d)
                  if (i >= 0) box.receivers.splice(i, 1)
                  return Effect.fail(CommError.make({ reason: "Timeout", group: `p2p ${from}->${rank}${tag === "" ? "" : ` tag ${tag}`}`, op: "recv", seq: box.sent, rank, ranks: [from], detail: `waited ${this.timeoutMs} ms; rank ${from} sent nothing more (${box.sent} message(s) so far)` }))
                }),
            }),
          )
        }),
      )
    return { rank, world: this.world, backend: this.copy ? "local" : "local (zero-copy)", issue, send, recv }
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
