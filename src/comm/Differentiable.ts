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
import { mul } from "../tensor/ops/Elementwise.js"
import { scatterAddRows } from "../tensor/ops/Gather.js"
import * as Reduce from "../tensor/ops/Reduce.js"
import { reshape } from "../tensor/ops/Shape.js"
import * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import * as Chunked from "./Chunked.js"
import type * as Collective from "./Collective.js"
import * as Delivered from "./Delivered.js"
import * as Alone from "./Alone.js"
import { Communicator, type CommunicatorShape, type Pending, type Request } from "./Communicator.js"
import type { Group } from "./Group.js"
import type * as ReceiveCombine from "./ReceiveCombine.js"

const run = (comm: CommunicatorShape, group: Group, request: Request) => Effect.flatMap(comm.issue(group, request), (p) => p.await)

const wrap = (t: Tensor.Tensor, o: Collective.Output<Collective.Values>): Tensor.Tensor => Delivered.tensorOf(o, t.device)

/**
 * Whether `request` on `group` is the identity for its one member: a group of one whose result
 * is its contribution (sums and gathers of one, an exchange or scatter that keeps every row).
 * Such a collective's result is its input's values where they are, forward and backward (as
 * Megatron's regions skip a tensor-parallel group of one): on a device no round trip through
 * the host, on the host no copy into new storage (at world 1 the tp and ep collectives of the
 * default model at hidden 1024 made ~11 MB of copies a step, a sixth of what drives V8's
 * mark-compacts there). Anything else meets the communicator, which also reports a malformed
 * request.
 */
const alone = (group: Group, t: Tensor.Tensor, request: Omit<Request, "tensor">): boolean => group.ranks.length === 1 && Alone.keepsItsRows({ shape: t.shape, ...request })

/** A collective's result as a tensor on its input's device: the input itself where it is alone. */
const collect = (comm: CommunicatorShape, group: Group, request: Request): Effect.Effect<Tensor.Tensor, unknown> =>
  alone(group, request.tensor, request) ? Effect.succeed(request.tensor) : Effect.map(run(comm, group, request), (o) => wrap(request.tensor, o))

const op = (
  name: string,
  group: Group,
  t: Tensor.Tensor,
  request: Omit<Request, "tensor">,
  adjoint: (comm: CommunicatorShape, g: Tensor.Tensor, forward: Collective.Output<Collective.Values>) => Effect.Effect<Tensor.Tensor, unknown>,
): Effect.Effect<{ readonly result: Tensor.Tensor; readonly splits: ReadonlyArray<number> }, unknown, Communicator> =>
  alone(group, t, request)
    ? Effect.succeed({ result: Autograd.passThroughEffect(name, t, (g) => Effect.succeed([g])), splits: [t.shape[0] ?? 1] })
    : Effect.gen(() => opSteps(name, group, t, request, adjoint))

/** op's steps where the group has other members, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* opSteps(
  name: string,
  group: Group,
  t: Tensor.Tensor,
  request: Omit<Request, "tensor">,
  adjoint: (comm: CommunicatorShape, g: Tensor.Tensor, forward: Collective.Output<Collective.Values>) => Effect.Effect<Tensor.Tensor, unknown>,
) {
  const comm = yield* Communicator
  // The tensor first: a spread with fields after it makes a new hidden class at every call (TensorLayout.ts, fields).
  const out = yield* run(comm, group, { tensor: t, ...request })
  const result = Autograd.resultEffect(name, [t], out.data, out.shape, (g) => Effect.map(adjoint(comm, g, out), (gi) => [gi]), comm.privateStorage === true)
  return { result, splits: out.splits ?? [] }
}

/**
 * allGather with reduce-scatter as backward.
 * @category combinators
 */
export const allGather = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("allGather", group, t, { op: "allGather" }, (comm, g) => collect(comm, group, { op: "reduceScatter", tensor: g, reduce: "sum" })),
    (x) => x.result,
  )

/**
 * allGatherV with reduceScatterV as backward; also returns the rows from each member.
 * @category combinators
 */
export const allGatherV = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("allGatherV", group, t, { op: "allGatherV" }, (comm, g, fwd) => collect(comm, group, { op: "reduceScatterV", tensor: g, counts: fwd.splits ?? [], reduce: "sum" })),
    (x) => ({ tensor: x.result, splits: x.splits }),
  )

/**
 * reduceScatter (sum) with allGather as backward.
 * @category combinators
 */
export const reduceScatter = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("reduceScatter", group, t, { op: "reduceScatter", reduce: "sum" }, (comm, g) => collect(comm, group, { op: "allGather", tensor: g })),
    (x) => x.result,
  )

/**
 * reduceScatterV (sum) with allGatherV as backward.
 * @category combinators
 */
export const reduceScatterV = (group: Group, t: Tensor.Tensor, counts: ReadonlyArray<number>) =>
  Effect.map(
    op("reduceScatterV", group, t, { op: "reduceScatterV", counts, reduce: "sum" }, (comm, g) => collect(comm, group, { op: "allGatherV", tensor: g })),
    (x) => x.result,
  )

/**
 * allReduce (sum) with allReduce (sum) as backward.
 * @category combinators
 */
export const allReduce = (group: Group, t: Tensor.Tensor) =>
  Effect.map(
    op("allReduce", group, t, { op: "allReduce", reduce: "sum" }, (comm, g) => collect(comm, group, { op: "allReduce", tensor: g, reduce: "sum" })),
    (x) => x.result,
  )

/**
 * allToAllV with the reverse exchange as backward; also returns the received splits.
 * @category combinators
 */
export const allToAllV = (group: Group, t: Tensor.Tensor, sendSplits: ReadonlyArray<number>) =>
  Effect.map(
    op("allToAllV", group, t, { op: "allToAllV", sendSplits }, (comm, g, fwd) => collect(comm, group, { op: "allToAllV", tensor: g, sendSplits: fwd.splits ?? [] })),
    (x) => ({ tensor: x.result, recvSplits: x.splits }),
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
  Effect.gen(() => allToAllVChunksSteps(group, ts, exchange, rows))

/** allToAllVChunks's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allToAllVChunksSteps(group: Group, ts: ReadonlyArray<Tensor.Tensor>, exchange: Chunked.Exchange, rows: ReadonlyArray<Int32Array | undefined> = []) {
  const comm = yield* Communicator
  const pending: Array<Pending<Collective.Output<Collective.Values>>> = []
  for (let i = 0; i < ts.length; i++) {
    const sendRows = rows[i]
    const tensor = ts[i] as Tensor.Tensor
    const request: Request = sendRows === undefined ? { op: "allToAllV", tensor, ...exchange } : { op: "allToAllV", tensor, sendRows, ...exchange }
    pending.push(yield* comm.issue(group, request))
  }
  const reverse = Chunked.reverse(exchange)
  const results: Array<Tensor.Tensor> = []
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i] as Tensor.Tensor
    const sendRows = rows[i]
    const out = yield* (pending[i] as Pending<Collective.Output<Collective.Values>>).await
    const adjoint = (g: Tensor.Tensor) =>
      Effect.map(run(comm, group, { op: "allToAllV", tensor: g, ...reverse }), (o) => {
        const back = wrap(g, o)
        return [sendRows === undefined ? back : scatterAddRows(back, sendRows, t.shape[0] ?? 0)]
      })
    results.push(Autograd.resultEffect("allToAllVChunks", [t], out.data, out.shape, adjoint, comm.privateStorage === true))
  }
  return results
}

/**
 * A chunked allToAllV whose received rows are summed onto `combine.tokens` rows (Request.combine:
 * the exchange and the unpermute after it in one pass); backward: the reverse exchange, sending
 * the gradient's row index[r] for each received row r (Request.sendRows: a received row's
 * gradient is its token's), the unpermute's gather fused with it.
 *
 * With `weights` [rows] (the sender's side of `combine.weights`: the same values, row for row, as
 * the receiver's copy, which the sum uses) each row is weighted as it is summed, the multiply
 * fused with the exchange too; backward: the same reverse exchange brings each row its token's
 * gradient g, then the rows' gradient is g * weights and the weights' the row-wise dot of g and
 * the rows (the adjoint of a multiply before the exchange).
 * @category combinators
 */
export const allToAllVCombine = (group: Group, t: Tensor.Tensor, exchange: Chunked.Exchange, combine: ReceiveCombine.Combine, weights?: Tensor.Tensor) => {
  const back = (comm: CommunicatorShape, g: Tensor.Tensor) => collect(comm, group, { op: "allToAllV", tensor: g, ...Chunked.reverse(exchange), sendRows: combine.index })
  if (weights === undefined) return Effect.map(op("allToAllVCombine", group, t, { op: "allToAllV", combine, ...exchange }, back), (x) => x.result)
  return Effect.gen(function* () {
    const n = t.shape[0] ?? 0
    if (combine.weights === undefined || weights.size !== n) {
      throw TensorError.shape("allToAllVCombine", `weights of ${weights.size} values for ${n} rows (and the receiver's combine.weights) are needed to weight the rows`)
    }
    const comm = yield* Communicator
    const out = yield* run(comm, group, { op: "allToAllV", tensor: t, combine, ...exchange })
    return Autograd.resultEffect(
      "allToAllVCombine",
      [t, weights],
      out.data,
      out.shape,
      (g) =>
        Effect.map(back(comm, g), (each) => {
          const rows = reshape(Tensor.detach(t), [n, n === 0 ? 0 : t.size / n])
          const perRow = reshape(each, rows.shape)
          const w = reshape(Tensor.detach(weights), [n, 1])
          return [reshape(mul(perRow, w), t.shape), reshape(Reduce.sum(mul(perRow, rows), 1), weights.shape)]
        }),
      comm.privateStorage === true,
    )
  })
}

/**
 * broadcast from group-local `root`, with a sum-reduce to the root as backward.
 * @category combinators
 */
export const broadcast = (group: Group, t: Tensor.Tensor, root: number) =>
  Effect.map(
    op("broadcast", group, t, { op: "broadcast", root }, (comm, g) =>
      Effect.map(collect(comm, group, { op: "allReduce", tensor: g, reduce: "sum" }), (summed) =>
        group.ranks[root] === comm.rank ? summed : Tensor.fromStorage(DType.allocate(g.dtype, t.size), t.shape, { device: g.device }),
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
    Autograd.passThroughEffect(
      "copyToGroup",
      t,
      (g) => Effect.map(collect(comm, group, { op: "allReduce", tensor: g, reduce: "sum" }), (summed) => [summed]),
      comm.privateStorage === true && !alone(group, t, { op: "allReduce", reduce: "sum" }),
    ),
  )
