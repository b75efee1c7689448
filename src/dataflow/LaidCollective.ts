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
 * The tensors move through comm/Differentiable, so the backward of each is its adjoint, run as
 * an effect. A group of one member satisfies every precondition (nothing is split over it).
 * A failed precondition is a Layout.LayoutError naming the collective, the axis and the layout.
 */
import * as Effect from "effect/Effect"
import * as Diff from "../comm/Differentiable.js"
import type { Group } from "../comm/Group.js"
import type { AxisName } from "../mapping/Axis.js"
import { LayoutError } from "./Layout.js"
import * as TensorLayout from "./TensorLayout.js"

const size = (group: Group) => group.ranks.length

const precondition = (op: string, axis: AxisName, group: Group, x: TensorLayout.WithLayout, holds: boolean, what: string) =>
  size(group) === 1 || holds ? Effect.void : Effect.fail(new LayoutError({ op, detail: `over ${axis} needs ${what} but the tensor is ${TensorLayout.format(x.layout)}` }))

const rowsSplitOver = (x: TensorLayout.WithLayout, axis: AxisName) => x.layout.dims[0]?.over.some((s) => s.axis === axis) ?? false

/**
 * Gathers the rows split over `axis` (backward: reduce-scatter).
 * @category combinators
 */
export const allGather = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) =>
  Effect.gen(function* () {
    yield* precondition("allGather", axis, group, x, rowsSplitOver(x, axis), `rows split over ${axis}`)
    return TensorLayout.attach(yield* Diff.allGather(group, x.tensor), TensorLayout.gather(x.layout, axis))
  })

/**
 * Sums the partial values over `axis` and splits the rows over it (backward: allgather).
 * @category combinators
 */
export const reduceScatter = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) =>
  Effect.gen(function* () {
    yield* precondition("reduceScatter", axis, group, x, x.layout.partial.includes(axis), `values partial over ${axis}`)
    return TensorLayout.attach(yield* Diff.reduceScatter(group, x.tensor), TensorLayout.scatter(x.layout, { axis, size: size(group) }))
  })

/**
 * Sums the partial values over `axis` (backward: allreduce).
 * @category combinators
 */
export const allReduce = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) =>
  Effect.gen(function* () {
    yield* precondition("allReduce", axis, group, x, x.layout.partial.includes(axis), `values partial over ${axis}`)
    return TensorLayout.attach(yield* Diff.allReduce(group, x.tensor), TensorLayout.reduce(x.layout, axis))
  })

/**
 * Enters a parallel region with the same whole tensor on every member (backward: allreduce of
 * the members' gradients).
 * @category combinators
 */
export const copyToGroup = (axis: AxisName, group: Group, x: TensorLayout.WithLayout) =>
  Effect.gen(function* () {
    const whole = !rowsSplitOver(x, axis) && !x.layout.partial.includes(axis)
    yield* precondition("copyToGroup", axis, group, x, whole, `rows whole and values complete over ${axis}`)
    return TensorLayout.attach(yield* Diff.copyToGroup(group, x.tensor), x.layout)
  })
