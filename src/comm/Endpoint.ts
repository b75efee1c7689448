/**
 * Endpoint: one rank's Communicator, made from a transport. What every backend's rank does the
 * same way is written here once: numbering its collectives per group (the sequence number is
 * taken when the op is issued, so the group's stream is ordered by issue), checking a peer's
 * rank, refusing work once the job is closed, and receiving p2p messages from its Inbox. A
 * transport supplies only how a contribution reaches the rendezvous and how a p2p message
 * reaches the peer.
 */
import * as Effect from "effect/Effect"
import type * as Tensor from "../tensor/Tensor.js"
import * as ChunkedLowering from "./ChunkedLowering.js"
import type * as Collective from "./Collective.js"
import * as CommError from "./CommError.js"
import type { CommunicatorShape, Request } from "./Communicator.js"
import * as Group from "./Group.js"
import type { Inbox } from "./Inbox.js"

/**
 * What `rank` declares of a collective request (every transport checks these across members),
 * built field by field (it runs on every collective; spreads cost several times as much); the
 * split arrays are copied, so a caller that reuses its own cannot change them afterwards.
 * @category constructors
 */
export const signatureOf = (rank: number, request: Request): Collective.Signature => {
  const t = request.tensor
  // A gathered send buffer has the rows sendRows names.
  const shape = request.sendRows === undefined ? t.shape : [request.sendRows.length, ...t.shape.slice(1)]
  const s: { -readonly [K in keyof Collective.Signature]: Collective.Signature[K] } = { op: request.op, rank, dtype: t.dtype, shape }
  if (request.reduce !== undefined) s.reduce = request.reduce
  if (request.root !== undefined) s.root = request.root
  if (request.sendSplits !== undefined) s.sendSplits = [...request.sendSplits]
  if (request.chunks !== undefined) s.chunks = request.chunks
  if (request.chunkOrder !== undefined) s.chunkOrder = request.chunkOrder
  if (request.recvSplits !== undefined) s.recvSplits = [...request.recvSplits]
  if (request.counts !== undefined) s.counts = [...request.counts]
  if (request.combine !== undefined) s.combine = request.combine
  return s
}

/**
 * What a transport gives one rank.
 * @category models
 */
export interface RankTransport {
  readonly rank: number
  readonly world: number
  /** The backend's name, as the Communicator reports it. */
  readonly backend: string
  readonly inbox: Inbox
  /** Why the job ended, once it has (then every op fails with Closed). */
  readonly closed: () => string | undefined
  /** Hands the contribution to the rendezvous now; the effect awaits the result. */
  readonly enter: (group: Group.Group, seq: number, request: Request) => Effect.Effect<Collective.Output<Collective.Values>, CommError.CommError>
  /** Moves a p2p message to rank `to` (FIFO per sender, receiver and tag). */
  readonly post: (to: number, t: Tensor.Tensor, tag: string) => void
  /**
   * Whether `enter` places the chunks of a chunked allToAllV, gathers `sendRows` and sums
   * `combine` itself
   * (results computed by Collective.outputFor from every contribution); otherwise the endpoint
   * lowers them (ChunkedLowering).
   */
  readonly placesChunks?: boolean
  /** Results are this rank's own and inputs are let go at completion (CommunicatorShape.privateStorage). */
  readonly privateStorage?: boolean
}

/**
 * The Communicator of one rank over a transport.
 * @category constructors
 */
export const make = (transport: RankTransport): CommunicatorShape => {
  const { rank, world, backend, inbox } = transport
  const sequence = new Map<string, number>()
  const closedError = (group: string, op: string, seq: number, why: string) => CommError.make({ reason: "Closed", group, op, seq, rank, ranks: [], detail: why })
  const checkPeer = (op: string, peer: number) =>
    Number.isInteger(peer) && peer >= 0 && peer < world
      ? Effect.void
      : Effect.fail(CommError.make({ reason: "BadInput", group: `p2p ${rank}->${peer}`, op, seq: -1, rank, ranks: [peer], detail: `rank ${peer} is outside 0..${world - 1}` }))
  const issue = (group: Group.Group, request: Request) =>
    Effect.sync(() => {
      const key = Group.key(group)
      const seq = sequence.get(key) ?? 0
      sequence.set(key, seq + 1)
      const why = transport.closed()
      if (why !== undefined) return { await: Effect.fail(closedError(Group.format(group), request.op, seq, why)) }
      const chunked =
        request.op === "allToAllV" && ((request.chunks ?? 1) > 1 || request.sendRows !== undefined || request.combine !== undefined) && transport.placesChunks !== true
      return { await: chunked ? ChunkedLowering.enter(transport, group, seq, request, signatureOf(rank, request)) : transport.enter(group, seq, request) }
    })
  const send = (to: number, t: Tensor.Tensor, tag = "") =>
    Effect.flatMap(checkPeer("send", to), () =>
      Effect.suspend(() => {
        const why = transport.closed()
        if (why !== undefined) return Effect.fail(closedError(`p2p ${rank}->${to}`, "send", -1, why))
        transport.post(to, t, tag)
        return Effect.void
      }),
    )
  const recv = (from: number, tag = "") => Effect.flatMap(checkPeer("recv", from), () => inbox.take(from, tag))
  return { rank, world, backend, issue, send, recv, privateStorage: transport.privateStorage === true }
}
