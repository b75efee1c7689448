/**
 * Link: a typed point-to-point edge between two rank actors (pipeline stages).
 *
 * A link carries one kind of tensor from one rank to another: its dtype, its number of dims
 * and (optionally) its TensorLayout are part of the link, checked on both ends, so a stage
 * that sends the wrong activation fails at the sender naming the link instead of corrupting
 * the receiver. A sender that knows the layout of what it sends passes it along; it must be
 * the link's layout, and the tensor must have that layout's local shape.
 *
 * Messages are identified by the link and a key (the micro-batch for pipeline links; 0 for a
 * link that carries one message at a time). The communicator tag is made from both here and
 * nowhere else, so two ends can never spell it differently; messages with the same key arrive
 * in the order they were sent.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { CommError } from "../comm/CommError.js"
import * as Comm from "../comm/Communicator.js"
import type * as DType from "../tensor/DType.js"
import type * as Tensor from "../tensor/Tensor.js"
import { formatShape } from "../tensor/TensorError.js"
import * as TensorLayout from "./TensorLayout.js"

/**
 * A link from one rank to another carrying tensors of one dtype, rank and layout.
 * @category models
 */
export interface Link {
  readonly name: string
  readonly from: number
  readonly to: number
  readonly dtype: DType.DType
  readonly dims: number
  /** The layout of what it carries (undefined: only dtype and dims are checked). */
  readonly layout: TensorLayout.TensorLayout | undefined
}

/**
 * What a link carries.
 * @category models
 */
export interface Kind {
  readonly dtype: DType.DType
  readonly dims: number
  readonly layout?: TensorLayout.TensorLayout | undefined
}

/**
 * Which message on a link: the micro-batch (or 0 for a link with one message at a time).
 * @category models
 */
export type Key = number

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
export const make = (name: string, from: number, to: number, kind: Kind): Link => {
  if (kind.layout !== undefined && kind.layout.dims.length !== kind.dims) {
    throw new RangeError(`link ${name}: layout ${TensorLayout.format(kind.layout)} has ${kind.layout.dims.length} dims but the link carries ${kind.dims}`)
  }
  return { name, from, to, dtype: kind.dtype, dims: kind.dims, layout: kind.layout }
}

/**
 * The communicator tag of message `key` on the link.
 * @category mapping
 */
export const tag = (link: Link, key: Key): string => `${link.name}#${key}`

const label = (link: Link) => `${link.name} ${link.from}->${link.to}`

const fits = (link: Link, t: Tensor.Tensor, side: string, claimed: TensorLayout.TensorLayout | undefined) => {
  const fail = (detail: string) => Effect.fail(new LinkError({ link: label(link), detail }))
  if (t.dtype !== link.dtype || t.rank !== link.dims) {
    return fail(`${side} a ${t.dtype} tensor ${formatShape(t.shape)} but the link carries ${link.dtype} tensors of ${link.dims} dims`)
  }
  if (link.layout === undefined) return Effect.void
  if (claimed !== undefined && !TensorLayout.equals(claimed, link.layout)) {
    return fail(`${side} a tensor laid out as ${TensorLayout.format(claimed)} but the link carries ${TensorLayout.format(link.layout)}`)
  }
  const misfit = TensorLayout.misfit(link.layout, t)
  return misfit === undefined ? Effect.void : fail(`${side} ${misfit}`)
}

/**
 * Sends message `key` on the link (only from its source rank); a tensor with its layout is
 * checked against the link's layout too.
 * @category combinators
 */
export const send = (link: Link, message: Tensor.Tensor | TensorLayout.WithLayout, key: Key = 0): Effect.Effect<void, LinkError | CommError, Comm.Communicator> =>
  Effect.gen(() => sendSteps(link, message, key))

/** send's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* sendSteps(link: Link, message: Tensor.Tensor | TensorLayout.WithLayout, key: Key) {
  const comm = yield* Comm.Communicator
  if (comm.rank !== link.from) return yield* Effect.fail(new LinkError({ link: label(link), detail: `rank ${comm.rank} sent on a link from rank ${link.from}` }))
  const [t, claimed] = "layout" in message ? [message.tensor, message.layout] : [message, undefined]
  yield* fits(link, t, "sent", claimed)
  yield* comm.send(link.to, t, tag(link, key))
}

/**
 * Receives message `key` on the link (only on its destination rank).
 * @category combinators
 */
export const recv = (link: Link, key: Key = 0): Effect.Effect<Tensor.Tensor, LinkError | CommError, Comm.Communicator> => Effect.gen(() => recvSteps(link, key))

/** recv's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* recvSteps(link: Link, key: Key) {
  const comm = yield* Comm.Communicator
  if (comm.rank !== link.to) return yield* Effect.fail(new LinkError({ link: label(link), detail: `rank ${comm.rank} received on a link to rank ${link.to}` }))
  const t = yield* comm.recv(link.from, tag(link, key))
  yield* fits(link, t, "received", undefined)
  return t
}
