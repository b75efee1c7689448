/**
 * ParallelLinear: column- and row-parallel linear layers over the attention TP group, with or
 * without sequence parallelism (Megatron-style).
 *
 * Shapes: x rows are tokens. W is [in, out]. Column-parallel: each member holds W[:, its out
 * block] and returns its output columns. Row-parallel: each member holds W[its in block, :]
 * and the partial products are summed over TP.
 *
 *   column, SP off: x [T, in] replicated -> copyToGroup (backward allReduce) -> x W_c  [T, out/tp]
 *   column, SP on:  x [T/tp, in] rows    -> allGather   (backward reduceScatter) -> [T, out/tp]
 *   row,    SP off: x [T, in/tp] -> x W_r partial -> allReduce     -> [T, out] replicated
 *   row,    SP on:  x [T, in/tp] -> x W_r partial -> reduceScatter -> [T/tp, out] rows
 *
 * A row-parallel layer's bias (Megatron's add_bias_linear) is replicated and added once the
 * partial products are summed (to the SP rows under SP): each member adds it to the rows it
 * holds, so its gradient is summed over tp where the rows are split, as a norm's is.
 *
 * The `Laid` variants take and give laid tensors: their collectives are the typed channels of
 * LaidCollective (layout in -> layout out, preconditions checked), and the output layout names
 * the output columns, split over tp for the column-parallel product. (The column-parallel
 * product exists only laid; the plain row-parallel one serves DenseMlp's plain forward.)
 */
import * as Effect from "effect/Effect"
import * as Diff from "../comm/Differentiable.js"
import type { Group } from "../comm/Group.js"
import { add } from "../tensor/ops/Elementwise.js"
import { matmul } from "../tensor/ops/Matmul.js"
import * as Shape from "../tensor/ops/Shape.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import * as LaidCollective from "./LaidCollective.js"
import { LayoutError } from "./Layout.js"
import * as TensorLayout from "./TensorLayout.js"

/**
 * How a parallel linear layer runs.
 * @category models
 */
export interface ParallelOptions {
  readonly tp: Group
  readonly sequenceParallel: boolean
}

/**
 * The row-parallel product: summed over TP, replicated (SP off) or row-sharded (SP on), plus
 * `bias` [out] where given.
 * @category combinators
 */
export const rowParallel = (x: Tensor.Tensor, w: Tensor.Tensor, options: ParallelOptions, bias?: Tensor.Tensor) => Effect.gen(() => rowParallelSteps(x, w, options, bias))

/** rowParallel's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* rowParallelSteps(x: Tensor.Tensor, w: Tensor.Tensor, options: ParallelOptions, bias: Tensor.Tensor | undefined) {
  const partial = matmul(x, w)
  if (!options.sequenceParallel) return biased(yield* Diff.allReduce(options.tp, partial), bias)
  const n = options.tp.ranks.length
  if ((partial.shape[0] ?? 0) % n !== 0) {
    return yield* Effect.fail(TensorError.shape("rowParallel", `${partial.shape[0]} tokens do not split over tp ${n} under sequence parallelism`))
  }
  return biased(yield* Diff.reduceScatter(options.tp, partial), bias)
}

/**
 * `rows` plus `bias` on each row (the last dim), or `rows` when there is none.
 * @category combinators
 */
export const biased = (rows: Tensor.Tensor, bias: Tensor.Tensor | undefined): Tensor.Tensor => (bias === undefined ? rows : add(rows, bias))

/**
 * One column-parallel product of laid rows: `w` [in, out block], or [out block, in] when
 * `transposed` (a tied output layer's block of the embedding table, read transposed (x W^T)
 * instead of a transposed copy of it a micro-batch and another of its gradient); `columns` names
 * the out dimension.
 * @category models
 */
export interface ColumnProduct {
  readonly w: Tensor.Tensor
  readonly columns: string
  readonly transposed?: boolean
}

/**
 * The column-parallel products of the same laid rows (Megatron's fused QKV): the rows are
 * gathered once under SP (copied in once otherwise), each product takes this member's block of
 * its `columns` out, and the backward sums the products' input gradients before the one
 * reduce-scatter (allreduce) of the rows' gradient, instead of one collective per product.
 * @category combinators
 */
export const columnParallelEachLaid = (x: TensorLayout.WithLayout, products: ReadonlyArray<ColumnProduct>, options: ParallelOptions) =>
  Effect.gen(() => columnParallelEachLaidSteps(x, products, options))

/** columnParallelEachLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* columnParallelEachLaidSteps(x: TensorLayout.WithLayout, products: ReadonlyArray<ColumnProduct>, options: ParallelOptions) {
  const full = yield* enterRegionLaid(x, options)
  return products.map((product) => columnProductOf(full, product, options))
}

/**
 * Enters the tp region: the whole rows on every member, gathered under SP (backward:
 * reduce-scatter), copied in otherwise (backward: allreduce).
 * @category combinators
 */
export const enterRegionLaid = (x: TensorLayout.WithLayout, options: ParallelOptions) =>
  options.sequenceParallel ? LaidCollective.allGather("tp", options.tp, x) : LaidCollective.copyToGroup("tp", options.tp, x)

/**
 * One column-parallel product of rows already in the tp region (enterRegionLaid): this member's
 * block of the `columns` out.
 * @category combinators
 */
export const columnProductOf = (full: TensorLayout.WithLayout, { w, columns, transposed = false }: ColumnProduct, options: ParallelOptions): TensorLayout.WithLayout => {
  const n = options.tp.ranks.length
  const out = TensorLayout.dim(columns, (w.shape[transposed ? 0 : 1] as number) * n, [{ axis: "tp", size: n }])
  return TensorLayout.attach(matmul(full.tensor, w, { transB: transposed }), TensorLayout.withLastDim(full.layout, out))
}

/**
 * The column-parallel product on laid rows: whole rows in (gathered under SP, copied in
 * otherwise), this member's block of the `columns` out (see ColumnProduct).
 * @category combinators
 */
export const columnParallelLaid = (x: TensorLayout.WithLayout, w: Tensor.Tensor, options: ParallelOptions, columns: string, transposed = false) =>
  Effect.map(columnParallelEachLaid(x, [{ w, columns, transposed }], options), (outs) => outs[0] as TensorLayout.WithLayout)

/**
 * The row-parallel product on laid rows whose columns are split over tp: partial sums of the
 * `columns` out, completed by a reduce-scatter (SP) or an allreduce, plus `bias` where given.
 * @category combinators
 */
export const rowParallelLaid = (x: TensorLayout.WithLayout, w: Tensor.Tensor, options: ParallelOptions, columns: string, bias?: Tensor.Tensor) =>
  Effect.gen(() => rowParallelLaidSteps(x, w, options, columns, bias))

/** rowParallelLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* rowParallelLaidSteps(x: TensorLayout.WithLayout, w: Tensor.Tensor, options: ParallelOptions, columns: string, bias: Tensor.Tensor | undefined) {
  const n = options.tp.ranks.length
  const split = x.layout.dims[x.layout.dims.length - 1]?.over.some((s) => s.axis === "tp") ?? false
  if (n > 1 && !split)
    return yield* Effect.fail(new LayoutError({ op: "rowParallel", detail: `needs its input columns split over tp but the tensor is ${TensorLayout.format(x.layout)}` }))
  const partial = TensorLayout.attach(
    matmul(x.tensor, w),
    TensorLayout.partialOver(TensorLayout.withLastDim(x.layout, TensorLayout.dim(columns, w.shape[1] as number)), { axis: "tp", size: n }),
  )
  const summed = options.sequenceParallel ? yield* LaidCollective.reduceScatter("tp", options.tp, partial) : yield* LaidCollective.allReduce("tp", options.tp, partial)
  return bias === undefined ? summed : TensorLayout.attach(biased(summed.tensor, bias), summed.layout)
}

/**
 * Member `index` of `parts`'s block of columns of w [in, out] (for column-parallel weights).
 * @category mapping
 */
export const columnShard = (w: Tensor.Tensor, index: number, parts: number): Tensor.Tensor => {
  const out = w.shape[1] as number
  if (out % parts !== 0) throw TensorError.shape("columnShard", `${out} columns do not split into ${parts}`)
  const width = out / parts
  return Shape.transpose(Shape.rows(Shape.transpose(w, 0, 1), index * width, (index + 1) * width), 0, 1)
}

/**
 * Member `index` of `parts`'s block of rows of w [in, out] (for row-parallel weights).
 * @category mapping
 */
export const rowShard = (w: Tensor.Tensor, index: number, parts: number): Tensor.Tensor => {
  const rows = w.shape[0] as number
  if (rows % parts !== 0) throw TensorError.shape("rowShard", `${rows} rows do not split into ${parts}`)
  const height = rows / parts
  return Shape.rows(w, index * height, (index + 1) * height)
}
