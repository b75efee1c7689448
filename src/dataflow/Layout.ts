/**
 * Layout: tensors typed by how they are laid out over mesh axes, and collectives as typed
 * rewrites of that layout (the scaling-book notation, restricted to dim 0: rows are tokens).
 *
 *   Laid<S, P>   rows sharded over the axes S, values partial sums over the axes P
 *                (S = never: rows replicated; P = never: values complete)
 *
 *   allGather over A     Laid<S, P>  -> Laid<Exclude<S, A>, P>       needs A in S
 *   reduceScatter over A Laid<S, P>  -> Laid<S | A, Exclude<P, A>>   needs A in P
 *   allReduce over A     Laid<S, P>  -> Laid<S, Exclude<P, A>>       needs A in P
 *
 * A wrong rewrite does not compile (properties/dataflow/Layout.prop.ts proves it with
 * @ts-expect-error), and a runtime check behind each rewrite catches what types cannot see
 * (layouts built from data, casts): a LayoutError naming the op, the axes and the layout.
 * TensorLayout.ts is the run-time description (every dim, sizes, token order) that operators
 * declare on their edges and links check; LaidCollective.ts its collectives.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Diff from "../comm/Differentiable.js"
import * as Group from "../comm/Group.js"
import type { AxisName } from "../mapping/Axis.js"
import * as Families from "../mapping/Families.js"
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import type * as Tensor from "../tensor/Tensor.js"

/**
 * A tensor with its layout.
 * @category models
 */
export interface Laid<S extends AxisName = never, P extends AxisName = never> {
  readonly tensor: Tensor.Tensor
  /** Axes the rows are sharded over (runtime record of S). */
  readonly sharded: ReadonlyArray<S>
  /** Axes the values are partial sums over (runtime record of P). */
  readonly partial: ReadonlyArray<P>
}

/**
 * A group together with the mesh axes it spans.
 * @category models
 */
export interface AxisGroup<A extends AxisName> {
  readonly group: Group.Group
  readonly axes: ReadonlyArray<A>
}

/**
 * A collective whose layout precondition does not hold.
 * @category errors
 */
export class LayoutError extends Data.TaggedError("LayoutError")<{ readonly op: string; readonly detail: string }> {
  override get message(): string {
    return `${this.op}: ${this.detail}`
  }
}

/**
 * A replicated, complete tensor.
 * @category constructors
 */
export const replicated = (tensor: Tensor.Tensor): Laid => ({ tensor, sharded: [], partial: [] })

/**
 * A tensor whose rows are sharded over `sharded` and values partial over `partial`.
 * @category constructors
 */
export const make = <S extends AxisName = never, P extends AxisName = never>(tensor: Tensor.Tensor, sharded: ReadonlyArray<S>, partial: ReadonlyArray<P>): Laid<S, P> => ({
  tensor,
  sharded,
  partial,
})

const familyOf = (axes: ReadonlyArray<AxisName>): Families.FamilyName | undefined => {
  const sorted = [...axes].sort().join("-")
  return Families.familyNames.find((f) => f !== "embedding" && [...Families.gridFamilies[f].axes].sort().join("-") === sorted)
}

/**
 * The group of `rank` spanning `axes` (one of the families of the mapping).
 * @category constructors
 */
export const axisGroup = <A extends AxisName>(config: ParallelConfig.ParallelConfig, rank: number, axes: ReadonlyArray<A>): AxisGroup<A> => {
  const family = familyOf(axes)
  if (family === undefined) throw new RangeError(`no group family spans the axes [${axes.join(", ")}]`)
  return { group: Group.ofFamily(config, family, rank), axes }
}

const check = (op: string, need: ReadonlyArray<AxisName>, have: ReadonlyArray<AxisName>, what: string, x: Laid<AxisName, AxisName>) =>
  need.every((a) => have.includes(a))
    ? Effect.void
    : Effect.fail(
        new LayoutError({
          op,
          detail: `needs ${what} over [${need.join(", ")}] but the tensor is sharded over [${x.sharded.join(", ")}] and partial over [${x.partial.join(", ")}]`,
        }),
      )

/**
 * Gathers the rows sharded over the group's axes (backward: reduce-scatter).
 * @category combinators
 */
export const allGather = <S extends AxisName, P extends AxisName, A extends S>(g: AxisGroup<A>, x: Laid<S, P>) =>
  Effect.gen(function* () {
    yield* check("allGather", g.axes, x.sharded, "rows sharded", x)
    const tensor = yield* Diff.allGather(g.group, x.tensor)
    return make(
      tensor,
      x.sharded.filter((a): a is Exclude<S, A> => !(g.axes as ReadonlyArray<AxisName>).includes(a)),
      x.partial,
    )
  })

/**
 * Sums partial values over the group's axes and shards the rows over them (backward: allgather).
 * @category combinators
 */
export const reduceScatter = <S extends AxisName, P extends AxisName, A extends P>(g: AxisGroup<A>, x: Laid<S, P>) =>
  Effect.gen(function* () {
    yield* check("reduceScatter", g.axes, x.partial, "partial sums", x)
    const tensor = yield* Diff.reduceScatter(g.group, x.tensor)
    return make<S | A, Exclude<P, A>>(
      tensor,
      [...x.sharded, ...g.axes],
      x.partial.filter((a): a is Exclude<P, A> => !(g.axes as ReadonlyArray<AxisName>).includes(a)),
    )
  })

/**
 * Sums partial values over the group's axes (backward: allreduce).
 * @category combinators
 */
export const allReduce = <S extends AxisName, P extends AxisName, A extends P>(g: AxisGroup<A>, x: Laid<S, P>) =>
  Effect.gen(function* () {
    yield* check("allReduce", g.axes, x.partial, "partial sums", x)
    const tensor = yield* Diff.allReduce(g.group, x.tensor)
    return make<S, Exclude<P, A>>(
      tensor,
      x.sharded,
      x.partial.filter((a): a is Exclude<P, A> => !(g.axes as ReadonlyArray<AxisName>).includes(a)),
    )
  })
