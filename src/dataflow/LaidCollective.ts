/**
 * LaidCollective: the collectives of the tensor-parallel regions as typed channels on laid
 * tensors, each a rewrite from an input layout to an output layout (TensorLayout) over one
 * mesh axis, with its precondition checked before any byte moves:
 *
 *   allGather over A       rows split over A            -> rows no longer split over A
 *   reduceScatter over A   values partial over A        -> complete, rows split over A
 *   allReduce over A       values partial over A        -> complete
 *   copyToGroup over A     rows whole and complete on A -> the same (backward: allreduce)
 *
 * and the variable-size channels of the MoE dispatchers, whose rows become ragged (each member
 * its own data-dependent count, TensorLayout.ragged):
 *
 *   allToAllV over A       values complete over A, splits cover the rows
 *                          -> the received rows, differing over A, token-permuted
 *   allGatherV over A      rows differ over A -> every member's rows, in member order
 *   reduceScatterV over A  values partial over A, counts cover the rows
 *                          -> complete, this member's count of rows, differing over A
 *
 * The V channels may span several axes at once (the etp-ep group): `over` is then the list of
 * shards, whose sizes multiply to the group's size.
 *
 * The tensors move through comm/Differentiable, so the backward of each is its adjoint, run as
 * an effect. A group of one member satisfies every precondition (nothing is split over it).
 * A failed precondition is a Layout.LayoutError naming the collective, the axis and the layout.
 */
import * as Effect from "effect/Effect"
import * as Chunked from "../comm/Chunked.js"
import * as Diff from "../comm/Differentiable.js"
import type { Group } from "../comm/Group.js"
import type * as ReceiveCombine from "../comm/ReceiveCombine.js"
import type { AxisName } from "../mapping/Axis.js"
import { LayoutError } from "./Layout.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as TensorLayout from "./TensorLayout.js"

const size = (group: Group) => group.ranks.length

const precondition = (op: string, axis: AxisName, group: Group, x: TensorLayout.WithLayout, holds: boolean, what: string) =>
  size(group) === 1 || holds ? Effect.void : Effect.fail(new LayoutError({ op, detail: `over ${axis} needs ${what} but the tensor is ${TensorLayout.format(x.layout)}` }))

const rowsSplitOver = (x: TensorLayout.WithLayout, axis: AxisName) => x.layout.dims[0]?.over.some((s) => s.axis === axis) ?? false

/**
 * The axes a variable-size collective spans: one axis (the whole group), or several shards.
 * @category models
 */
export type Over = AxisName | ReadonlyArray<TensorLayout.Shard>

const shardsOf = (over: Over, group: Group): ReadonlyArray<TensorLayout.Shard> => (typeof over === "string" ? [{ axis: over, size: size(group) }] : over).filter((s) => s.size > 1)

const nameOf = (over: Over) => (typeof over === "string" ? over : over.map((s) => s.axis).join("-") || "(no axis)")

const fail = (op: string, over: Over, detail: string, x: TensorLayout.WithLayout) =>
  Effect.fail(new LayoutError({ op, detail: `over ${nameOf(over)} ${detail} but the tensor is ${TensorLayout.format(x.layout)}` }))

/** Checks that the shards span the group and that `splits` share out the tensor's rows. */
const checkSplits = (op: string, over: Over, group: Group, x: TensorLayout.WithLayout, splits: ReadonlyArray<number>, rows = x.tensor.shape[0] ?? -1) => {
  const spanned = shardsOf(over, group).reduce((n, s) => n * s.size, 1)
  if (spanned !== size(group)) return fail(op, over, `spans ${spanned} members where the group has ${size(group)}`, x)
  const total = splits.reduce((a, b) => a + b, 0)
  const valid = splits.length === size(group) && splits.every((n) => Number.isInteger(n) && n >= 0) && total === rows
  return valid ? Effect.void : fail(op, over, `needs ${size(group)} row counts that add up to the rows, not [${splits.join(", ")}],`, x)
}

/** Dim 0 as ragged rows of `count`, differing over `over` (plus `add`, less `remove`). */
const raggedRows = (l: TensorLayout.TensorLayout, count: number, add: ReadonlyArray<TensorLayout.Shard>, remove: ReadonlyArray<TensorLayout.Shard> = []) => {
  const [rows, ...rest] = l.dims
  const kept = (rows?.over ?? []).filter((s) => !remove.some((r) => r.axis === s.axis))
  const over = [...kept, ...add.filter((s) => !kept.some((k) => k.axis === s.axis))]
  return TensorLayout.withDims(l, [TensorLayout.ragged(rows?.name ?? "rows", count, over), ...rest])
}

/**
 * Gathers the rows split over `axis` (backward: reduce-scatter).
 * @category combinators
 */
export const allGather = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) => Effect.gen(() => allGatherSteps(axis, group, x))

/** allGather's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allGatherSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout) {
  yield* precondition("allGather", axis, group, x, rowsSplitOver(x, axis), `rows split over ${axis}`)
  return TensorLayout.attach(yield* Diff.allGather(group, x.tensor), TensorLayout.gather(x.layout, axis))
}

/**
 * Sums the partial values over `axis` and splits the rows over it (backward: allgather).
 * @category combinators
 */
export const reduceScatter = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) => Effect.gen(() => reduceScatterSteps(axis, group, x))

/** reduceScatter's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* reduceScatterSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout) {
  yield* precondition("reduceScatter", axis, group, x, x.layout.partial.includes(axis), `values partial over ${axis}`)
  return TensorLayout.attach(yield* Diff.reduceScatter(group, x.tensor), TensorLayout.scatter(x.layout, { axis, size: size(group) }))
}

/**
 * Sums the partial values over `axis` (backward: allreduce).
 * @category combinators
 */
export const allReduce = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) => Effect.gen(() => allReduceSteps(axis, group, x))

/** allReduce's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allReduceSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout) {
  yield* precondition("allReduce", axis, group, x, x.layout.partial.includes(axis), `values partial over ${axis}`)
  return TensorLayout.attach(yield* Diff.allReduce(group, x.tensor), TensorLayout.reduce(x.layout, axis))
}

/**
 * Enters a parallel region with the same whole tensor on every member (backward: allreduce of
 * the members' gradients).
 * @category combinators
 */
export const copyToGroup = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) => Effect.gen(() => copyToGroupSteps(axis, group, x))

/** copyToGroup's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* copyToGroupSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout) {
  const whole = !rowsSplitOver(x, axis) && !x.layout.partial.includes(axis)
  yield* precondition("copyToGroup", axis, group, x, whole, `rows whole and values complete over ${axis}`)
  return TensorLayout.attach(yield* Diff.copyToGroup(group, x.tensor), x.layout)
}

/**
 * Sends `sendSplits[j]` consecutive rows to member j and receives theirs (backward: the reverse
 * exchange); the received rows are ragged over `axis` and token-permuted.
 * @category combinators
 */
export const allToAllV = (axis: AxisName, group: Group, x: TensorLayout.WithLayout, sendSplits: ReadonlyArray<number>) =>
  Effect.gen(() => allToAllVSteps(axis, group, x, sendSplits))

/** allToAllV's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allToAllVSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout, sendSplits: ReadonlyArray<number>) {
  yield* checkSplits("allToAllV", axis, group, x, sendSplits)
  yield* precondition("allToAllV", axis, group, x, !x.layout.partial.includes(axis), `values complete over ${axis}`)
  const out = yield* Diff.allToAllV(group, x.tensor, sendSplits)
  const layout = TensorLayout.inOrder(raggedRows(x.layout, out.tensor.shape[0] ?? 0, shardsOf(axis, group)), "permuted")
  return { tensor: out.tensor, layout, recvSplits: out.recvSplits }
}

/** A chunked exchange's preconditions on one tensor: its counts, its rows (`rows` sent), complete values. */
const checkChunked = (axis: AxisName, group: Group, x: TensorLayout.WithLayout, exchange: Chunked.Exchange, rows?: number) =>
  Effect.gen(() => checkChunkedSteps(axis, group, x, exchange, rows))

/** checkChunked's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* checkChunkedSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout, exchange: Chunked.Exchange, rows?: number) {
  const { chunks, sendSplits, recvSplits } = exchange
  const entries = size(group) * chunks
  if (sendSplits.length !== entries || recvSplits.length !== entries)
    return yield* fail("allToAllV", axis, `in ${chunks} chunks needs ${entries} send and receive counts, not ${sendSplits.length} and ${recvSplits.length},`, x)
  yield* checkSplits("allToAllV", axis, group, x, Chunked.perMember(sendSplits, size(group), chunks), rows)
  yield* precondition("allToAllV", axis, group, x, !x.layout.partial.includes(axis), `values complete over ${axis}`)
}

/**
 * The chunked exchange (comm/Chunked.ts) of one or more tensors with the same splits, issued
 * together (backward: the reverse chunked exchange); the received rows are ragged over `axis`
 * and token-permuted, as allToAllV's. Where `rows[i]` is given, tensor i sends those of its rows
 * (gathered as the exchange copies them: a permute fused with the exchange).
 * @category combinators
 */
export const allToAllVChunks = (
  axis: AxisName,
  group: Group,
  xs: ReadonlyArray<TensorLayout.WithLayout>,
  exchange: Chunked.Exchange,
  rows: ReadonlyArray<Int32Array | undefined> = [],
) => Effect.gen(() => allToAllVChunksLaidSteps(axis, group, xs, exchange, rows))

/** allToAllVChunks' steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allToAllVChunksLaidSteps(
  axis: AxisName,
  group: Group,
  xs: ReadonlyArray<TensorLayout.WithLayout>,
  exchange: Chunked.Exchange,
  rows: ReadonlyArray<Int32Array | undefined>,
) {
  for (let i = 0; i < xs.length; i++) yield* checkChunked(axis, group, xs[i] as TensorLayout.WithLayout, exchange, rows[i]?.length)
  const outs = yield* Diff.allToAllVChunks(
    group,
    xs.map((x) => x.tensor),
    exchange,
    rows,
  )
  return outs.map((out, i) =>
    TensorLayout.attach(out, TensorLayout.inOrder(raggedRows((xs[i] as TensorLayout.WithLayout).layout, out.shape[0] ?? 0, shardsOf(axis, group)), "permuted")),
  )
}

/**
 * The chunked exchange of one tensor whose received rows are summed onto `combine.tokens` rows
 * as they arrive (comm/ReceiveCombine.ts; backward: the reverse exchange of each token's
 * gradient): the same preconditions as allToAllVChunks. Returns the sums and the layout the
 * received rows would have had (ragged over `axis`, token-permuted), for the caller to say what
 * the sum made of them. With `weights` (the rows' own, the same values as combine.weights) each
 * row is weighted as it is summed (Differentiable.allToAllVCombine).
 * @category combinators
 */
export const allToAllVCombine = (axis: AxisName, group: Group, x: TensorLayout.WithLayout, exchange: Chunked.Exchange, combine: ReceiveCombine.Combine, weights?: Tensor.Tensor) =>
  Effect.gen(() => allToAllVCombineSteps(axis, group, x, exchange, combine, weights))

/** allToAllVCombine's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allToAllVCombineSteps(axis: AxisName, group: Group, x: TensorLayout.WithLayout, exchange: Chunked.Exchange, combine: ReceiveCombine.Combine, weights?: Tensor.Tensor) {
  yield* checkChunked(axis, group, x, exchange)
  const combined = yield* Diff.allToAllVCombine(group, x.tensor, exchange, combine, weights)
  const received = exchange.recvSplits.reduce((a, b) => a + b, 0)
  return { combined, received: TensorLayout.inOrder(raggedRows(x.layout, received, shardsOf(axis, group)), "permuted") }
}

/**
 * Gathers every member's rows, in member order (backward: reduce-scatter-v); also returns the
 * rows from each member.
 * @category combinators
 */
export const allGatherV = (over: Over, group: Group, x: TensorLayout.WithLayout) => Effect.gen(() => allGatherVSteps(over, group, x))

/** allGatherV's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* allGatherVSteps(over: Over, group: Group, x: TensorLayout.WithLayout) {
  const shards = shardsOf(over, group)
  const differ = shards.every((s) => rowsSplitOver(x, s.axis))
  if (size(group) > 1 && !differ) return yield* fail("allGatherV", over, `needs rows that differ over ${nameOf(over)}`, x)
  const out = yield* Diff.allGatherV(group, x.tensor)
  return { tensor: out.tensor, layout: raggedRows(x.layout, out.tensor.shape[0] ?? 0, [], shards), splits: out.splits }
}

/**
 * Sums the partial values over the group and gives member j its `counts[j]` rows (backward:
 * allgather-v).
 * @category combinators
 */
export const reduceScatterV = (over: Over, group: Group, x: TensorLayout.WithLayout, counts: ReadonlyArray<number>) => Effect.gen(() => reduceScatterVSteps(over, group, x, counts))

/** reduceScatterV's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* reduceScatterVSteps(over: Over, group: Group, x: TensorLayout.WithLayout, counts: ReadonlyArray<number>) {
  yield* checkSplits("reduceScatterV", over, group, x, counts)
  const shards = shardsOf(over, group)
  if (!shards.every((s) => x.layout.partial.includes(s.axis))) return yield* fail("reduceScatterV", over, `needs values partial over ${nameOf(over)}`, x)
  const out = yield* Diff.reduceScatterV(group, x.tensor, counts)
  const complete = shards.reduce((l, s) => TensorLayout.reduce(l, s.axis), x.layout)
  return TensorLayout.attach(out, raggedRows(complete, out.shape[0] ?? 0, shards))
}
