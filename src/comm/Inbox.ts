/**
 * Inbox: the point-to-point messages waiting for one rank, one FIFO per (sender, tag), on any
 * transport. A transport only delivers (`deliver`); taking a message, waiting for one with a
 * timeout that names the silent sender, and failing every waiting receive when the job ends
 * are written here once.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Tensor from "../tensor/Tensor.js"
import * as CommError from "./CommError.js"

interface Mailbox {
  readonly messages: Array<Tensor.Tensor>
  readonly receivers: Array<Deferred.Deferred<Tensor.Tensor, CommError.CommError>>
  /** Messages delivered so far (named in a timeout). */
  delivered: number
}

/**
 * The inbox of one rank.
 * @category models
 */
export class Inbox {
  readonly rank: number
  readonly timeoutMs: number
  #boxes = new Map<string, Mailbox>()
  #closed: string | undefined

  readonly #onWaiting: ((waiting: number) => void) | undefined
  #waiting = 0

  /** `onWaiting` hears how many receives wait for a message (a transport may poll harder then). */
  constructor(rank: number, timeoutMs: number, onWaiting?: (waiting: number) => void) {
    this.rank = rank
    this.timeoutMs = timeoutMs
    this.#onWaiting = onWaiting
  }

  #count(delta: number): void {
    this.#waiting += delta
    this.#onWaiting?.(this.#waiting)
  }

  #box(from: number, tag: string): Mailbox {
    const key = `${from}\u0000${tag}`
    let box = this.#boxes.get(key)
    if (box === undefined) {
      box = { messages: [], receivers: [], delivered: 0 }
      this.#boxes.set(key, box)
    }
    return box
  }

  /** A message from `from` arrived (dropped once the inbox is closed). */
  deliver(from: number, tag: string, t: Tensor.Tensor): void {
    if (this.#closed !== undefined) return
    const box = this.#box(from, tag)
    box.delivered++
    const receiver = box.receivers.shift()
    if (receiver !== undefined) {
      this.#count(-1)
      Deferred.doneUnsafe(receiver, Effect.succeed(t))
    } else box.messages.push(t)
  }

  /** The next message from `from` with this tag, waiting up to the timeout. */
  take(from: number, tag: string): Effect.Effect<Tensor.Tensor, CommError.CommError> {
    return Effect.suspend(() => {
      const group = `p2p ${from}->${this.rank}${tag === "" ? "" : ` tag ${tag}`}`
      if (this.#closed !== undefined) return Effect.fail(CommError.make({ reason: "Closed", group, op: "recv", seq: -1, rank: this.rank, ranks: [], detail: this.#closed }))
      const box = this.#box(from, tag)
      const ready = box.messages.shift()
      if (ready !== undefined) return Effect.succeed(ready)
      const d = Deferred.makeUnsafe<Tensor.Tensor, CommError.CommError>()
      box.receivers.push(d)
      this.#count(1)
      return Deferred.await(d).pipe(
        Effect.timeoutOrElse({
          duration: this.timeoutMs,
          orElse: () =>
            Effect.suspend(() => {
              const i = box.receivers.indexOf(d)
              if (i >= 0) {
                box.receivers.splice(i, 1)
                this.#count(-1)
              }
              return Effect.fail(
                CommError.make({
                  reason: "Timeout",
                  group,
                  op: "recv",
                  seq: box.delivered,
                  rank: this.rank,
                  ranks: [from],
                  detail: `waited ${this.timeoutMs} ms; rank ${from} sent nothing more (${box.delivered} message(s) so far)`,
                }),
              )
            }),
        }),
      )
    })
  }

  /** Ends the job for this rank: every waiting receive fails with Closed, later ones too. */
  close(why: string): void {
    if (this.#closed !== undefined) return
    this.#closed = why
    for (const [key, box] of this.#boxes) {
      const from = key.split("\u0000")[0]
      for (const d of box.receivers)
        Deferred.doneUnsafe(d, Effect.fail(CommError.make({ reason: "Closed", group: `p2p ${from}->${this.rank}`, op: "recv", seq: -1, rank: this.rank, ranks: [], detail: why })))
    }
    this.#boxes.clear()
    if (this.#waiting !== 0) this.#count(-this.#waiting)
  }
}
