/**
 * Link: a typed point-to-point edge between two rank actors (pipeline stages).
 *
 * A link carries one kind of tensor from one rank to another: its dtype and its number of
 * dims are part of the link, checked on both ends, so a stage that sends the wrong activation
 * fails at the sender naming the link instead of corrupting the receiver. Messages on a link
 * arrive in the order they were sent.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import type * as DType from "../tensor/DType.js"
import type * as Tensor from "../tensor/Tensor.js"
import { formatShape } from "../tensor/TensorError.js"

/**
 * A link from one rank to another carrying tensors of one dtype and rank.
 * @category models
 */
export interface Link {
  readonly name: string
  readonly from: number
  readonly to: number
  readonly dtype: DType.DType
  readonly dims: number
}

/**
 * A tensor that does not fit its link.
 * @category errors
 */
export class LinkError extends Data.TaggedError("LinkError")<{ readonly link: string; readonly detail: string }> {
  override get message(): string {
    return `link ${this.link}: ${this.detail}`
  }
}

/**
 * A link.
 * @category constructors
 */
export const make = (name: string, from: number, to: number, kind: { readonly dtype: DType.DType; readonly dims: number }): Link => ({
  name,
  from,
  to,
  dtype: kind.dtype,
  dims: kind.dims,
})

const fits = (link: Link, t: Tensor.Tensor, side: string) =>
  t.dtype === link.dtype && t.rank === link.dims
    ? Effect.void
    : Effect.fail(new LinkError({ link: `${link.name} ${link.from}->${link.to}`, detail: `${side} a ${t.dtype} tensor ${formatShape(t.shape)} but the link carries ${link.dtype} tensors of ${link.dims} dims` }))

/**
 * Sends on the link (only from its source rank).
 * @category combinators
 */
export const send = (link: Link, t: Tensor.Tensor) =>
  Effect.gen(function* () {
    const comm = yield* Comm.Communicator
    if (comm.rank !== link.from) return yield* Effect.fail(new LinkError({ link: link.name, detail: `rank ${comm.rank} sent on a link from rank ${link.from}` }))
    yield* fits(link, t, "sent")
    yield* comm.send(link.to, t, link.name)
  })

/**
 * Receives the next tensor on the link (only on its destination rank).
 * @category combinators
 */
export const recv = (link: Link) =>
  Effect.gen(function* () {
    const comm = yield* Comm.Communicator
    if (comm.rank !== link.to) return yield* Effect.fail(new LinkError({ link: link.name, detail: `rank ${comm.rank} received on a link to rank ${link.to}` }))
    const t = yield* comm.recv(link.from, link.name)
    yield* fits(link, t, "received")
    return t
  })
