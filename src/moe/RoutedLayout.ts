/**
 * RoutedLayout: the layouts a token dispatcher's rows go through, from the tokens it is given
 * to the tokens it gives back.
 *
 *   enter      the token rows, in whatever layout the model keeps them, viewed as this rank's
 *              own batch on the expert grid: ragged rows that differ over etp and ep
 *   permute    the rows routed to experts, expert-major: token-permuted, ragged
 *   ... the variable-size channels of LaidCollective (allToAllV, allGatherV, reduceScatterV)
 *   unpermute  every token back to its row: in sequence order again
 *   leave      the rows in the layout they entered with (same count, sequence order, complete)
 *
 * The local steps check their preconditions like the channels do (a LayoutError naming the
 * step and the layout), so a dispatcher's combine can only hand back rows it has returned to
 * sequence order and completed.
 */
import * as Effect from "effect/Effect"
import { LayoutError } from "../dataflow/Layout.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as Dispatcher from "./Dispatcher.js"

/**
 * The shards of the etp-ep group (etp inner), for the channels that span it.
 * @category mapping
 */
export const expertShards = (groups: Dispatcher.ExpertGroups): ReadonlyArray<TensorLayout.Shard> => [
  { axis: "etp", size: groups.etp.ranks.length },
  { axis: "ep", size: groups.ep.ranks.length },
]

const rowsOf = (l: TensorLayout.TensorLayout) => TensorLayout.localShape(l)[0] ?? 0

const withRows = (l: TensorLayout.TensorLayout, rows: number, name?: string): TensorLayout.TensorLayout => {
  const [first, ...rest] = l.dims
  return TensorLayout.withDims(l, [TensorLayout.ragged(name ?? first?.name ?? "rows", rows, first?.over ?? []), ...rest])
}

/**
 * The token rows of layout `l` as this rank's own batch on the expert grid.
 * @category constructors
 */
export const enter = (l: TensorLayout.TensorLayout, groups: Dispatcher.ExpertGroups): TensorLayout.TensorLayout => {
  const [first, ...rest] = l.dims
  return TensorLayout.withDims(l, [TensorLayout.ragged(first?.name ?? "tokens", rowsOf(l), expertShards(groups)), ...rest])
}

/**
 * The routed copies of the rows, `rows` of them in expert-major order.
 * @category combinators
 */
export const permuted = (l: TensorLayout.TensorLayout, rows: number): TensorLayout.TensorLayout => TensorLayout.inOrder(withRows(l, rows, "routed"), "permuted")

/**
 * The same rows with their last dim replaced (a column joined or split off, the experts' output).
 * @category combinators
 */
export const columns = (x: TensorLayout.WithLayout, t: Tensor.Tensor, name: string): TensorLayout.WithLayout =>
  TensorLayout.attach(t, TensorLayout.withLastDim(x.layout, TensorLayout.dim(name, t.shape[t.rank - 1] ?? 0)))

const refuse = (op: string, what: string, l: TensorLayout.TensorLayout) => Effect.fail(new LayoutError({ op, detail: `needs ${what} but the tensor is ${TensorLayout.format(l)}` }))

/**
 * Every routed row back to its token: `tokens` rows in sequence order (partial sums stay
 * partial: the scatter-add is linear); needs token-permuted rows.
 * @category combinators
 */
export const unpermute = (x: TensorLayout.WithLayout, output: Tensor.Tensor, tokens: number) =>
  x.layout.tokens !== "permuted"
    ? refuse("unpermute", "token-permuted rows", x.layout)
    : Effect.succeed(TensorLayout.attach(output, TensorLayout.inOrder(withRows(x.layout, tokens, "tokens"), "sequence")))

/**
 * The rows handed back in the layout they entered with; needs as many complete rows in sequence
 * order.
 * @category combinators
 */
export const leave = (x: TensorLayout.WithLayout, entered: TensorLayout.TensorLayout) =>
  x.layout.tokens !== "sequence" || x.layout.partial.length > 0 || x.tensor.shape[0] !== rowsOf(entered)
    ? refuse("combine", `${rowsOf(entered)} complete rows in sequence order to return to ${TensorLayout.format(entered)}`, x.layout)
    : Effect.succeed(TensorLayout.attach(x.tensor, entered))

/**
 * The layout the plain (unlaid) dispatcher entry points give their tokens [T, H]: whole rows.
 * @category constructors
 */
export const plain = (tokens: Tensor.Tensor): TensorLayout.TensorLayout => TensorLayout.make(tokens.shape.map((n, i) => TensorLayout.dim(i === 0 ? "tokens" : "hidden", n)))
