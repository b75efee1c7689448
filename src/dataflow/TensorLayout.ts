/**
 * TensorLayout: a run-time description of how a tensor is laid out over the mesh, the value
 * that operators declare on their edges and links check on the wire (Layout.ts has the
 * compile-time twin, `Laid<S, P>`).
 *
 * One entry per tensor dim: its global extent and the mesh axes it is sharded over (outermost
 * first), plus the axes the values are partial sums over and the order of the token rows, in
 * the scaling-book notation. Worked example, B*S = 32 tokens, H = 16, cp = 2, tp = 2 with
 * sequence parallelism: the hidden rows of one rank are
 *
 *   [tokens 32/cp2/tp2, hidden 16] sequence-parallel          local shape [8, 16]
 *
 * and without sequence parallelism `[tokens 32/cp2, hidden 16]`, local shape [16, 16].
 * Sequence parallelism is not a separate flag: it is "the token rows are sharded over tp".
 * Axes of size 1 are dropped when a layout is built, so a layout does not depend on how a
 * degree of 1 is spelled. The collective rewrites (scatter, reduce, gather) mirror those of
 * Layout.ts so an operator can derive the layout it produces from the layout it was given.
 *
 * Routed rows (MoE dispatch) have a data-dependent count: a ragged dim records this rank's own
 * row count and the axes over which the members hold different rows, written
 * `[routed ragged 12/ep2, hidden 16] token-permuted` (12 rows here, other counts elsewhere).
 */
import type { AxisName } from "../mapping/Axis.js"
import type * as Tensor from "../tensor/Tensor.js"
import { formatShape } from "../tensor/TensorError.js"

/**
 * One mesh axis a dim is split over, with its size.
 * @category models
 */
export interface Shard {
  readonly axis: AxisName
  readonly size: number
}

/**
 * One tensor dim: its name, its global extent and the axes it is split over.
 * @category models
 */
export interface Dim {
  readonly name: string
  readonly size: number
  readonly over: ReadonlyArray<Shard>
  /** A data-dependent row count: `size` is this rank's own count, not a global extent. */
  readonly ragged?: true
}

/**
 * The order of token rows: as in the sequence, or permuted into expert order (MoE dispatch).
 * @category models
 */
export type TokenOrder = "sequence" | "permuted"

/**
 * A tensor's layout.
 * @category models
 */
export interface TensorLayout {
  readonly dims: ReadonlyArray<Dim>
  /** Axes the values are partial sums over (empty: complete values). */
  readonly partial: ReadonlyArray<AxisName>
  readonly tokens: TokenOrder
}

/**
 * A tensor with the layout it is in.
 * @category models
 */
export interface WithLayout {
  readonly tensor: Tensor.Tensor
  readonly layout: TensorLayout
}

/**
 * A dim of `size` split over `over` (shards of size 1 are dropped).
 * @category constructors
 */
export const dim = (name: string, size: number, over: ReadonlyArray<Shard> = []): Dim => ({ name, size, over: splitting(over) })

/** The shards that split something: an axis of size 1 is dropped wherever a layout names one. */
const splitting = (shards: ReadonlyArray<Shard>): ReadonlyArray<Shard> => shards.filter((s) => s.size > 1)

/**
 * A dim of routed rows: this rank's `count` of them, the members' rows differing over `over`.
 * @category constructors
 */
export const ragged = (name: string, count: number, over: ReadonlyArray<Shard> = []): Dim => ({ name, size: count, over: splitting(over), ragged: true })

/**
 * A layout from its dims.
 * @category constructors
 */
export const make = (dims: ReadonlyArray<Dim>, options: { readonly partial?: ReadonlyArray<Shard>; readonly tokens?: TokenOrder } = {}): TensorLayout =>
  fields(
    dims,
    splitting(options.partial ?? []).map((s) => s.axis),
    options.tokens ?? "sequence",
  )

/**
 * Every layout is built here, its fields written out in one order: a spread with more fields
 * after it (`{ ...l, dims }`) makes a new hidden class at every call in Node 20's V8, and every
 * reader of such objects then misses its inline caches (bench/README.md, train suite,
 * twenty-seventh session).
 */
const fields = (dims: ReadonlyArray<Dim>, partial: ReadonlyArray<AxisName>, tokens: TokenOrder): TensorLayout => ({ dims, partial, tokens })

/**
 * The layout with other dims (the same partial axes and token order).
 * @category combinators
 */
export const withDims = (l: TensorLayout, dims: ReadonlyArray<Dim>): TensorLayout => fields(dims, l.partial, l.tokens)

/**
 * A tensor paired with its layout.
 * @category constructors
 */
export const attach = (tensor: Tensor.Tensor, layout: TensorLayout): WithLayout => ({ tensor, layout })

/**
 * The shape one rank holds: each dim's extent divided by the sizes of its axes.
 * @category mapping
 */
export const localShape = (l: TensorLayout): ReadonlyArray<number> => l.dims.map((d) => (d.ragged ? d.size : d.over.reduce((n, s) => n / s.size, d.size)))

/**
 * Whether the token rows (dim 0) are split over tp: sequence parallelism.
 * @category guards
 */
export const isSequenceParallel = (l: TensorLayout): boolean => l.dims[0]?.over.some((s) => s.axis === "tp") ?? false

/**
 * Whether two layouts describe the same placement.
 * @category guards
 */
export const equals = (a: TensorLayout, b: TensorLayout): boolean =>
  a === b ||
  (a.tokens === b.tokens &&
    a.partial.length === b.partial.length &&
    a.partial.every((axis, i) => axis === b.partial[i]) &&
    a.dims.length === b.dims.length &&
    a.dims.every((d, i) => sameDim(d, b.dims[i] as Dim)))

/** Whether two dims read the same in `format`: name, extent, raggedness and shards in order. */
const sameDim = (a: Dim, b: Dim): boolean =>
  a.name === b.name &&
  a.size === b.size &&
  (a.ragged ?? false) === (b.ragged ?? false) &&
  a.over.length === b.over.length &&
  a.over.every((s, i) => s.axis === b.over[i]?.axis && s.size === b.over[i]?.size)

/**
 * Appends a dim that no axis splits (e.g. the hidden columns a lookup adds to token rows).
 * @category combinators
 */
export const withDim = (l: TensorLayout, name: string, size: number): TensorLayout => withDims(l, [...l.dims, dim(name, size)])

/**
 * The values become partial sums over `shard` (a row-parallel product, a masked lookup).
 * @category combinators
 */
export const partialOver = (l: TensorLayout, shard: Shard): TensorLayout =>
  shard.size > 1 && !l.partial.includes(shard.axis) ? fields(l.dims, [...l.partial, shard.axis], l.tokens) : l

/**
 * After an allreduce over `axis`: values complete over it.
 * @category combinators
 */
export const reduce = (l: TensorLayout, axis: AxisName): TensorLayout =>
  fields(
    l.dims,
    l.partial.filter((a) => a !== axis),
    l.tokens,
  )

/**
 * After a reduce-scatter over `shard`: values complete over it, rows (dim 0) split over it.
 * @category combinators
 */
export const scatter = (l: TensorLayout, shard: Shard): TensorLayout => {
  const [rows, ...rest] = l.dims
  if (rows === undefined) return l
  return withDims(reduce(l, shard.axis), [dim(rows.name, rows.size, [...rows.over, shard]), ...rest])
}

/**
 * After an allgather over `axis`: rows (dim 0) no longer split over it.
 * @category combinators
 */
export const gather = (l: TensorLayout, axis: AxisName): TensorLayout => {
  const [rows, ...rest] = l.dims
  if (rows === undefined) return l
  return withDims(l, [
    dim(
      rows.name,
      rows.size,
      rows.over.filter((s) => s.axis !== axis),
    ),
    ...rest,
  ])
}

/**
 * The last dim replaced (a product's output columns replace its input columns).
 * @category combinators
 */
export const withLastDim = (l: TensorLayout, d: Dim): TensorLayout => withDims(l, [...l.dims.slice(0, -1), d])

/**
 * The same rows in another token order.
 * @category combinators
 */
export const inOrder = (l: TensorLayout, tokens: TokenOrder): TensorLayout => fields(l.dims, l.partial, tokens)

/**
 * The text of a layout, e.g. `[tokens 32/cp2/tp2, hidden 16] sequence-parallel`.
 * @category formatting
 */
export const format = (l: TensorLayout): string => {
  const dims = l.dims.map((d) => `${d.name} ${d.ragged ? "ragged " : ""}${d.size}${d.over.map((s) => `/${s.axis}${s.size}`).join("")}`).join(", ")
  const notes = [
    ...(isSequenceParallel(l) ? ["sequence-parallel"] : []),
    ...(l.partial.length > 0 ? [`partial over ${l.partial.join(", ")}`] : []),
    ...(l.tokens === "permuted" ? ["token-permuted"] : []),
  ]
  return `[${dims}]${notes.length > 0 ? ` ${notes.join(", ")}` : ""}`
}

/**
 * Why `t` cannot be a tensor of layout `l` (its local shape differs), or undefined if it fits.
 * @category guards
 */
export const misfit = (l: TensorLayout, t: Tensor.Tensor): string | undefined => {
  const want = localShape(l)
  const fits = t.rank === want.length && want.every((n, i) => t.shape[i] === n)
  return fits ? undefined : `a tensor ${formatShape(t.shape)}, where ${format(l)} has local shape ${formatShape(want)}`
}
