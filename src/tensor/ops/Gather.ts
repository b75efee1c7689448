/**
 * Gather and scatter-add of rows, and the embedding lookup built on them.
 *
 * Shapes ("..." is the row shape, the same on both sides):
 *   gatherRows(src [N, ...], index [M])              -> [M, ...]        out[i] = src[index[i]]
 *   scatterAddRows(src [M, ...], index [M], numRows) -> [numRows, ...]  out[index[i]] += src[i]
 *   embedding(table [V, H], ids [...idsShape])       -> [...idsShape, H]
 *
 * These move tokens to and from experts (dispatch / combine), so they are each other's adjoints:
 * the backward of a gather is a scatter-add with the same index and vice versa. Scatter-add
 * sums in increasing i, so a repeated index gives the same bits on every run and every rank.
 * Both run on the dtype's `gatherRows` / `scatterAddRows` kernels.
 *
 * An index outside [0, rows) is a ShapeError naming the op, the position, the value and the
 * number of rows; indices are Int32Array so they are integers by construction.
 */
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/** The leading dim and the elements per row of a tensor of rank >= 1. */
const rowLayout = (op: string, t: Tensor.Tensor, what: string): { readonly n: number; readonly cols: number } => {
  const n = t.shape[0]
  if (n === undefined) throw TensorError.shape(op, `${what} needs at least 1 dim (the row dim), got ${TensorError.formatShape(t.shape)}`)
  return { n, cols: Tensor.sizeOf(t.shape.slice(1)) }
}

/** Every index in [0, rows), else a ShapeError naming the first one outside. */
const checkIndex = (op: string, index: Int32Array, rows: number, what: string): void => {
  for (let i = 0; i < index.length; i++) {
    const v = index[i] as number
    if (v < 0 || v >= rows) throw TensorError.shape(op, `${what} ${v} at position ${i} is outside [0, ${rows})`)
  }
}

/**
 * Rows of src picked by index: out[i] = src[index[i]].
 * @category combinators
 */
export const gatherRows = (src: Tensor.Tensor, index: Int32Array): Tensor.Tensor => {
  const { n, cols } = rowLayout("gatherRows", src, "src")
  checkIndex("gatherRows", index, n, "index")
  return gatherChecked("gatherRows", src, index, n, cols)
}

/** gatherRows after the checks; `op` names the tape node. */
const gatherChecked = (op: string, src: Tensor.Tensor, index: Int32Array, n: number, cols: number): Tensor.Tensor => {
  // Every output row is written by the gather: no need to zero it first.
  const place = Place.of(op, src)
  const out = place.allocate(src.dtype, index.length * cols)
  place.kernels(src.dtype).gatherRows(place.operand(src), index, out, cols)
  const shape = [index.length, ...src.shape.slice(1)]
  return Autograd.result(op, [src], out, shape, (g) => [scatterChecked("scatterAddRows", g, index, n, cols)])
}

/**
 * Rows of src added into numRows zero rows: out[index[i]] += src[i], in increasing i.
 * @category combinators
 */
export const scatterAddRows = (src: Tensor.Tensor, index: Int32Array, numRows: number): Tensor.Tensor => {
  const { n, cols } = rowLayout("scatterAddRows", src, "src")
  if (index.length !== n) {
    throw TensorError.shape("scatterAddRows", `index has ${index.length} entries but src ${TensorError.formatShape(src.shape)} has ${n} rows`)
  }
  if (!Number.isInteger(numRows) || numRows < 0) throw TensorError.shape("scatterAddRows", `numRows must be an integer >= 0, got ${numRows}`)
  checkIndex("scatterAddRows", index, numRows, "index")
  return scatterChecked("scatterAddRows", src, index, numRows, cols)
}

/** scatterAddRows after the checks. */
const scatterChecked = (op: string, src: Tensor.Tensor, index: Int32Array, numRows: number, cols: number): Tensor.Tensor => {
  const place = Place.of(op, src)
  const out = place.zeros(src.dtype, numRows * cols)
  place.kernels(src.dtype).scatterAddRows(place.operand(src), index, out, cols)
  const shape = [numRows, ...src.shape.slice(1)]
  return Autograd.result(op, [src], out, shape, (g) => [gatherChecked("gatherRows", g, index, numRows, cols)])
}

/**
 * The rows of `table` [V, H] named by `ids`: [...idsShape, H] (idsShape defaults to
 * [ids.length]). An id outside [0, V) is a ShapeError naming the id, its position and V.
 * @category combinators
 */
export const embedding = (table: Tensor.Tensor, ids: Int32Array, idsShape: ReadonlyArray<number> = [ids.length]): Tensor.Tensor => {
  if (table.rank !== 2) throw TensorError.shape("embedding", `table must be [V, H], got ${TensorError.formatShape(table.shape)}`)
  if (idsShape.some((d) => !Number.isInteger(d) || d < 0) || Tensor.sizeOf(idsShape) !== ids.length) {
    throw TensorError.shape("embedding", `ids shape ${TensorError.formatShape(idsShape)} does not hold the ${ids.length} ids`)
  }
  const [v, h] = table.shape as [number, number]
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number
    if (id < 0 || id >= v) {
      throw TensorError.shape("embedding", `id ${id} at position ${i} is outside [0, ${v}) (table ${TensorError.formatShape(table.shape)})`)
    }
  }
  const rows = gatherChecked("embedding", table, ids, v, h)
  if (idsShape.length === 1) return rows
  const shape = [...idsShape, h]
  return Autograd.result("embedding", [rows], rows.data, shape, (g) => [Tensor.fromStorage(g.data, rows.shape, { device: g.device })])
}
