/**
 * Communicator: one rank's view of the collectives and p2p transfers of a job (an Effect
 * service, one instance per rank).
 *
 * A backend implements three primitives: `issue` (enter a collective on a group's ordered
 * stream and get a Pending handle), `send` and `recv`. Every collective below is built on
 * `issue`, so all backends share one set of semantics (Collective.compute).
 *
 * Streams: each group has one ordered stream per rank. `start.*` issues an op and returns at
 * once with a handle to await: ops on one group complete in issue order; ops on different groups
 * (or compute in between) overlap. The plain functions issue and await in one step.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Tensor from "../tensor/Tensor.js"
import type * as Collective from "./Collective.js"
import * as Delivered from "./Delivered.js"
import type { CommError } from "./CommError.js"
import type { Group } from "./Group.js"
import type * as ReceiveCombine from "./ReceiveCombine.js"

/**
 * A collective in flight: await it for the result.
 * @category models
 */
export interface Pending<A> {
  readonly await: Effect.Effect<A, CommError>
}

/**
 * What a rank asks of a collective (its own tensor and the op's parameters).
 * @category models
 */
export interface Request {
  readonly op: Collective.Op
  readonly tensor: Tensor.Tensor
  readonly reduce?: "sum" | "max"
  readonly root?: number
  readonly sendSplits?: ReadonlyArray<number>
  /** allToAllV in chunks (Chunked.ts): how many, which side is chunk-major, the rows received. */
  readonly chunks?: number
  readonly chunkOrder?: Collective.Signature["chunkOrder"]
  readonly recvSplits?: ReadonlyArray<number>
  /**
   * allToAllV: send these rows of `tensor`, in this order, instead of the tensor itself (the
   * transport gathers them as it copies, or first where it cannot).
   */
  readonly sendRows?: Int32Array
  /**
   * allToAllV: sum the received rows onto `combine.tokens` rows (received row r onto row
   * index[r], in increasing r) instead of returning them: an unpermute fused with the exchange
   * (ReceiveCombine.ts). Needs recvSplits.
   */
  readonly combine?: ReceiveCombine.Combine
  readonly counts?: ReadonlyArray<number>
  /** A receive buffer for the result (reused across steps to avoid fresh allocations). */
  readonly out?: Tensor.Tensor
}

/**
 * What a backend provides for one rank.
 * @category models
 */
export interface CommunicatorShape {
  readonly rank: number
  readonly world: number
  readonly backend: string
  /**
   * Every collective result is new storage of this rank's alone, and the transport reads no
   * request's tensor once its Pending completed (it copies at issue, or waits for its readers):
   * either may be reused as soon as the rank's own program is done with it. The copying local and
   * threads backends and MPI say so; zero-copy modes (results shared between ranks) do not.
   */
  readonly privateStorage?: boolean
  /** Enters a collective on the group's stream; the sequence number is taken now. */
  readonly issue: (group: Group, request: Request) => Effect.Effect<Pending<Collective.Output<Collective.Values>>, CommError>
  /** Queues `t` for rank `to` (FIFO per sender, receiver and tag); completes once queued. */
  readonly send: (to: number, t: Tensor.Tensor, tag?: string) => Effect.Effect<void, CommError>
  /** The next tensor from rank `from` with this tag (waits up to the timeout). */
  readonly recv: (from: number, tag?: string) => Effect.Effect<Tensor.Tensor, CommError>
}

/**
 * The Communicator service.
 * @category services
 */
export class Communicator extends Context.Service<Communicator, CommunicatorShape>()("pleat/Communicator") {}

const asTensor = (o: Collective.Output<Collective.Values>, input: Tensor.Tensor): Tensor.Tensor => Delivered.tensorOf(o, input.device)

const startWith = <A>(group: Group, request: Request, f: (o: Collective.Output<Collective.Values>) => A) =>
  Effect.flatMap(Communicator, (comm) => Effect.map(comm.issue(group, request), (p): Pending<A> => ({ await: Effect.map(p.await, f) })))

/**
 * Issue-now, await-later versions of the collectives.
 * @category combinators
 */
export const start = {
  allReduce: (group: Group, t: Tensor.Tensor, reduce: "sum" | "max" = "sum") => startWith(group, { op: "allReduce", tensor: t, reduce }, (o) => asTensor(o, t)),
  allGather: (group: Group, t: Tensor.Tensor, out?: Tensor.Tensor) =>
    startWith(group, { op: "allGather", tensor: t, ...(out === undefined ? {} : { out }) }, (o) => asTensor(o, t)),
  allGatherV: (group: Group, t: Tensor.Tensor) => startWith(group, { op: "allGatherV", tensor: t }, (o) => ({ tensor: asTensor(o, t), splits: o.splits ?? [] })),
  reduceScatter: (group: Group, t: Tensor.Tensor, reduce: "sum" | "max" = "sum") => startWith(group, { op: "reduceScatter", tensor: t, reduce }, (o) => asTensor(o, t)),
  reduceScatterV: (group: Group, t: Tensor.Tensor, counts: ReadonlyArray<number>, reduce: "sum" | "max" = "sum") =>
    startWith(group, { op: "reduceScatterV", tensor: t, counts, reduce }, (o) => asTensor(o, t)),
  allToAllV: (group: Group, t: Tensor.Tensor, sendSplits: ReadonlyArray<number>, out?: Tensor.Tensor) =>
    startWith(group, { op: "allToAllV", tensor: t, sendSplits, ...(out === undefined ? {} : { out }) }, (o) => ({ tensor: asTensor(o, t), recvSplits: o.splits ?? [] })),
  broadcast: (group: Group, t: Tensor.Tensor, root: number) => startWith(group, { op: "broadcast", tensor: t, root }, (o) => asTensor(o, t)),
  barrier: (group: Group) => startWith(group, { op: "barrier", tensor: Tensor.zeros([0]) }, () => undefined as void),
}

const now = <A, R>(e: Effect.Effect<Pending<A>, CommError, R>) => Effect.flatMap(e, (p) => p.await)

/**
 * The element-wise sum (or max) over the group, on every member.
 * @category combinators
 */
export const allReduce = (group: Group, t: Tensor.Tensor, reduce: "sum" | "max" = "sum") => now(start.allReduce(group, t, reduce))

/**
 * Every member's rows, concatenated in group-local order (same row count on every member).
 * @category combinators
 */
export const allGather = (group: Group, t: Tensor.Tensor, out?: Tensor.Tensor) => now(start.allGather(group, t, out))

/**
 * Like allGather with any row count per member; also returns the counts.
 * @category combinators
 */
export const allGatherV = (group: Group, t: Tensor.Tensor) => now(start.allGatherV(group, t))

/**
 * Member i gets the i-th equal block of rows of the sum.
 * @category combinators
 */
export const reduceScatter = (group: Group, t: Tensor.Tensor, reduce: "sum" | "max" = "sum") => now(start.reduceScatter(group, t, reduce))

/**
 * Sends sendSplits[j] consecutive rows to member j; returns the received rows (in source
 * order) and how many came from each member.
 * @category combinators
 */
export const allToAllV = (group: Group, t: Tensor.Tensor, sendSplits: ReadonlyArray<number>, out?: Tensor.Tensor) => now(start.allToAllV(group, t, sendSplits, out))

/**
 * The root's tensor on every member.
 * @category combinators
 */
export const broadcast = (group: Group, t: Tensor.Tensor, root: number) => now(start.broadcast(group, t, root))

/**
 * Waits until every member arrives.
 * @category combinators
 */
export const barrier = (group: Group) => now(start.barrier(group))

/**
 * Sends a tensor to a rank.
 * @category combinators
 */
export const send = (to: number, t: Tensor.Tensor, tag?: string) => Effect.flatMap(Communicator, (c) => c.send(to, t, tag))

/**
 * Receives a tensor from a rank.
 * @category combinators
 */
export const recv = (from: number, tag?: string) => Effect.flatMap(Communicator, (c) => c.recv(from, tag))
