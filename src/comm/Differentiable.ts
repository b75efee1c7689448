/**
 * Differentiable: collectives as autograd ops, each with its adjoint as backward.
 *
 *   allGather      <-> reduceScatter (sum)       allGatherV <-> reduceScatterV (counts = splits)
 *   allReduce(sum) <-> allReduce(sum)            allToAllV(splits) <-> allToAllV(received splits)
 *   allToAllV in chunks (sendSplits, recvSplits, "received") <-> (recvSplits, sendSplits, "sent")
 *   the same, received rows summed onto tokens <-> the reverse, sending each token's gradient
 *   broadcast(root) <-> reduce to root (sum on the root, zeros elsewhere)
 *
 * The forward issues the collective now; the backward issues its adjoint during
 * `tape.backwardEffect`, which walks nodes in reverse recording order, so every member of a
 * group issues the adjoints in the same order.
 */
import * as Effect from "effect/Effect"
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import { scatterAddRows } from "../tensor/ops/Gather.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Chunked from "./Chunked.js"
import type * as Collective from "./Collective.js"
import { Communicator, type CommunicatorShape, type Pending, type Request } from "./Communicator.js"
import type { Group } from "./Group.js"
import type * as ReceiveCombine from "./ReceiveCombine.js"

const run = (comm: CommunicatorShape, group: Group, request: Request) => Effect.flatMap(comm.issue(group, request), (p) => p.await)

const wrap = (t: Tensor.Tensor, o: Collective.Output): Tensor.Tensor => Tensor.fromStorage(o.data, o.shape, { device: t.device })

const op = (
  name: string,
  group: Group,
  t: Tensor.Tensor,
  request: Omit<Request, "tensor">,
  adjoint: (comm: CommunicatorShape, g: Tensor.Tensor, forward: Collective.Output) => Effect.Effect<Tensor.Tensor, unknown>,
) =>
  Effect.gen(function* () {
    const comm = yield* Communicator
    const out = yield* run(comm, group, { ...request, tensor: t })
    const result = Autograd.resultEffect(name, [t], out.data, out.shape, (g) => Effect.map(adjoint(comm, g, out), (gi) => [gi]))
    return { result, out }
  })

/**
 * allGather with reduce-scatter as backward.
 * @category combinators
 */
export const allGather = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("allGather", group, t, { op: "allGather" }, (comm, g) => Effect.map(run(comm, group, { op: "reduceScatter", tensor: g, reduce: "sum" }), (o) => wrap(g, o))),
    (x) => x.result,
  )

/**
 * allGatherV with reduceScatterV as backward; also returns the rows from each member.
 * @category combinators
 */
export const allGatherV = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("allGatherV", group, t, { op: "allGatherV" }, (comm, g, fwd) =>
      Effect.map(run(comm, group, { op: "reduceScatterV", tensor: g, counts: fwd.splits ?? [], reduce: "sum" }), (o) => wrap(g, o)),
    ),
    (x) => ({ tensor: x.result, splits: x.out.splits ?? [] }),
  )

/**
 * reduceScatter (sum) with allGather as backward.
 * @category combinators
 */
export const reduceScatter = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("reduceScatter", group, t, { op: "reduceScatter", reduce: "sum" }, (comm, g) => Effect.map(run(comm, group, { op: "allGather", tensor: g }), (o) => wrap(g, o))),
    (x) => x.result,
  )

/**
 * reduceScatterV (sum) with allGatherV as backward.
 * @category combinators
 */
export const reduceScatterV = (group: Group, t: Tensor.Tensor, counts: ReadonlyArray<number>) =>
  Effect.map(
    op("reduceScatterV", group, t, { op: "reduceScatterV", counts, reduce: "sum" }, (comm, g) => Effect.map(run(comm, group, { op: "allGatherV", tensor: g }), (o) => wrap(g, o))),
    (x) => x.result,
  )

/**
 * allReduce (sum) with allReduce (sum) as backward.
 * @category combinators
 */
export const allReduce = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("allReduce", group, t, { op: "allReduce", reduce: "sum" }, (comm, g) => Effect.map(run(comm, group, { op: "allReduce", tensor: g, reduce: "sum" }), (o) => wrap(g, o))),
    (x) => x.result,
  )

/**
 * allToAllV with the reverse exchange as backward; also returns the received splits.
 * @category combinators
 */
export const allToAllV = (group: Group, t: Tensor.Tensor, sendSplits: ReadonlyArray<number>) =>
  Effect.map(
    op("allToAllV", group, t, { op: "allToAllV", sendSplits }, (comm, g, fwd) =>
      Effect.map(run(comm, group, { op: "allToAllV", tensor: g, sendSplits: fwd.splits ?? [] }), (o) => wrap(g, o)),
    ),
    (x) => ({ tensor: x.result, recvSplits: x.out.splits ?? [] }),
  )

/**
 * Chunked allToAllVs (Chunked.ts) of several tensors with the same splits, all issued before
 * any is awaited (one meeting of the members for all of them); each result's backward is its
 * reverse chunked exchange: the splits swapped and the other side chunk-major. Where `rows[i]`
 * is given, tensor i's send buffer is those of its rows, gathered as the exchange copies
 * (Request.sendRows), and its gradient the reverse exchange summed onto those rows (in
 * increasing send-buffer row, as a gather's backward sums).
 * @category combinators
 */
export const allToAllVChunks = (group: Group, ts: ReadonlyArray<Tensor.Tensor>, exchange: Chunked.Exchange, rows: ReadonlyArray<Int32Array | undefined> = []) =>
  Effect.gen(function* () {
    const comm = yield* Communicator
    const pending: Array<Pending<Collective.Output>> = []
    for (let i = 0; i < ts.length; i++) {
      const sendRows = rows[i]
      const request: Request = { op: "allToAllV", tensor: ts[i] as Tensor.Tensor, ...exchange }
      pending.push(yield* comm.issue(group, sendRows === undefined ? request : { ...request, sendRows }))
    }
    const reverse = Chunked.reverse(exchange)
    const results: Array<Tensor.Tensor> = []
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i] as Tensor.Tensor
      const sendRows = rows[i]
      const out = yield* (pending[i] as Pending<Collective.Output>).await
      const adjoint = (g: Tensor.Tensor) =>
        Effect.map(run(comm, group, { op: "allToAllV", tensor: g, ...reverse }), (o) => {
          const back = wrap(g, o)
          return [sendRows === undefined ? back : scatterAddRows(back, sendRows, t.shape[0] ?? 0)]
        })
      results.push(Autograd.resultEffect("allToAllVChunks", [t], out.data, out.shape, adjoint))
    }
    return results
  })

/**
 * A chunked allToAllV whose received rows are summed onto `combine.tokens` rows (Request.combine:
 * the exchange and the unpermute after it in one pass); backward: the reverse exchange, sending
 * the gradient's row index[r] for each received row r (Request.sendRows: a received row's
 * gradient is its token's), the unpermute's gather fused with it.
 * @category combinators
 */
export const allToAllVCombine = (group: Group, t: Tensor.Tensor, exchange: Chunked.Exchange, combine: ReceiveCombine.Combine) =>
  Effect.map(
    op("allToAllVCombine", group, t, { op: "allToAllV", ...exchange, combine }, (comm, g) =>
      Effect.map(run(comm, group, { op: "allToAllV", tensor: g, ...Chunked.reverse(exchange), sendRows: combine.index }), (o) => wrap(g, o)),
    ),
    (x) => x.result,
  )

/**
 * broadcast from group-local `root`, with a sum-reduce to the root as backward.
 * @category combinators
 */
export const broadcast = (group: Group, t: Tensor.Tensor, root: number) =>
  Effect.map(
    op("broadcast", group, t, { op: "broadcast", root }, (comm, g) =>
      Effect.map(run(comm, group, { op: "allReduce", tensor: g, reduce: "sum" }), (o) =>
        group.ranks[root] === comm.rank ? wrap(g, o) : Tensor.fromStorage(DType.allocate(g.dtype, t.size), t.shape, { device: g.device }),
      ),
    ),
    (x) => x.result,
  )

/**
 * Identity forward, allReduce (sum) backward: enters a tensor-parallel region whose input is
 * replicated (each member's gradient is partial, so the backward sums them).
 * @category combinators
 */
export const copyToGroup = (group: Group, t: Tensor.Tensor) =>
  Effect.map(Communicator, (comm) =>
    Autograd.resultEffect("copyToGroup", [t], t.data, t.shape, (g) => Effect.map(run(comm, group, { op: "allReduce", tensor: g, reduce: "sum" }), (o) => [wrap(g, o)])),
  )
