/**
 * Shape ops: reshape and row slices (views, no copy), transpose, concat and split (copies).
 */
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as DType from "../DType.js"
import * as Kernels from "../kernels/Kernels.js"
import { reference } from "../kernels/Reference.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"
import { around, normaliseDim } from "./Reduce.js"

/**
 * The same storage under another shape (one dim may be -1, inferred). A view: no copy.
 * @category combinators
 */
export const reshape = (t: Tensor.Tensor, shape: ReadonlyArray<number>): Tensor.Tensor => {
  const inferred = shape.filter((d) => d === -1).length
  const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1)
  if (inferred > 1 || shape.some((d) => d < -1 || !Number.isInteger(d))) {
    throw TensorError.shape("reshape", `bad target shape ${TensorError.formatShape(shape)} (dims >= 0, at most one -1)`)
  }
  const resolved = shape.map((d) => (d === -1 ? (known === 0 ? 0 : t.size / known) : d))
  if (Tensor.sizeOf(resolved) !== t.size || resolved.some((d) => !Number.isInteger(d))) {
    throw TensorError.shape("reshape", `cannot view ${TensorError.formatShape(t.shape)} (${t.size} elements) as ${TensorError.formatShape(shape)}`)
  }
  return Autograd.result("reshape", [t], t.values(), resolved, (g) => [Place.tensor(g.values(), t.shape, g.device)])
}

/**
 * Rows `start` (inclusive) to `end` (exclusive) of the leading dim. A view: no copy.
 * @category combinators
 */
export const rows = (t: Tensor.Tensor, start: number, end: number): Tensor.Tensor => {
  const n = t.shape[0]
  if (n === undefined || !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > n) {
    throw TensorError.shape("rows", `rows ${start}..${end} are outside ${TensorError.formatShape(t.shape)}`)
  }
  const rowSize = Tensor.sizeOf(t.shape.slice(1))
  const data = t.data.subarray(start * rowSize, end * rowSize)
  return Autograd.result("rows", [t], data, [end - start, ...t.shape.slice(1)], (g) => {
    const out = DType.allocate(g.dtype, t.size)
    out.set(g.data, start * rowSize)
    return [Tensor.fromStorage(out, t.shape, { device: g.device })]
  })
}

/** The product of shape[from..to). */
const span = (shape: ReadonlyArray<number>, from: number, to: number): number => {
  let p = 1
  for (let i = from; i < to; i++) p *= shape[i] as number
  return p
}

/** Blocks of at least this many elements move as rows of one gather (a view per block cost more). */
const gatherFrom = 8

const swap = (src: DType.Storage, shape: ReadonlyArray<number>, dim0: number, dim1: number): { data: DType.Storage; shape: Array<number> } => {
  const [d0, d1] = dim0 <= dim1 ? [dim0, dim1] : [dim1, dim0]
  const outShape = [...shape]
  outShape[d0] = shape[d1] as number
  outShape[d1] = shape[d0] as number
  if (d0 === d1) return { data: src.slice(), shape: outShape }
  // Seen as [A, n0, B, n1, C] -> [A, n1, B, n0, C]: C-element blocks move whole.
  const a = span(shape, 0, d0)
  const n0 = shape[d0] as number
  const b = span(shape, d0 + 1, d1)
  const n1 = shape[d1] as number
  const c = span(shape, d1 + 1, shape.length)
  const out = DType.allocateUninitialized(DType.of(src), src.length)
  if (c >= gatherFrom) {
    // Blocks of c elements are rows: one row gather (the dtype's kernel) in the output's order.
    const index = new Int32Array(a * n1 * b * n0)
    let r = 0
    for (let ia = 0; ia < a; ia++) for (let j1 = 0; j1 < n1; j1++) for (let ib = 0; ib < b; ib++) for (let j0 = 0; j0 < n0; j0++) index[r++] = ((ia * n0 + j0) * b + ib) * n1 + j1
    Kernels.forDType(DType.of(src), reference).gatherRows(src, index, out, c)
    return { data: out, shape: outShape }
  }
  let o = 0
  for (let ia = 0; ia < a; ia++) {
    for (let j1 = 0; j1 < n1; j1++) {
      for (let ib = 0; ib < b; ib++) {
        for (let j0 = 0; j0 < n0; j0++) {
          const from = (((ia * n0 + j0) * b + ib) * n1 + j1) * c
          for (let k = 0; k < c; k++) out[o + k] = src[from + k] as number
          o += c
        }
      }
    }
  }
  return { data: out, shape: outShape }
}

/**
 * Exchanges dims `dim0` and `dim1` (a copy, so the result stays contiguous).
 * @category combinators
 */
export const transpose = (t: Tensor.Tensor, dim0: number, dim1: number): Tensor.Tensor => {
  const d0 = normaliseDim("transpose", t.rank, dim0)
  const d1 = normaliseDim("transpose", t.rank, dim1)
  const { data, shape } = swap(t.readHost(), t.shape, d0, d1)
  return Autograd.result("transpose", [t], data, shape, (g) => {
    const back = swap(g.readHost(), g.shape, d0, d1)
    return [Tensor.fromStorage(back.data, back.shape, { device: g.device })]
  })
}

/**
 * Joins tensors along `dim`; all other dims must agree.
 * @category combinators
 */
export const concat = (ts: ReadonlyArray<Tensor.Tensor>, dim: number): Tensor.Tensor => {
  const first = ts[0]
  if (first === undefined) throw TensorError.shape("concat", "needs at least one tensor")
  const d = normaliseDim("concat", first.rank, dim)
  for (const t of ts) {
    Autograd.sameKind("concat", first, t)
    const ok = t.rank === first.rank && t.shape.every((s, i) => i === d || s === first.shape[i])
    if (!ok) {
      throw TensorError.shape("concat", `shapes ${TensorError.formatShape(first.shape)} and ${TensorError.formatShape(t.shape)} differ outside dim ${d}`)
    }
  }
  const sizes = ts.map((t) => t.shape[d] as number)
  const total = sizes.reduce((a, b) => a + b, 0)
  const shape = first.shape.map((s, i) => (i === d ? total : s))
  const { outer, inner } = around(shape, d)
  const out = DType.allocateUninitialized(first.dtype, Tensor.sizeOf(shape))
  let offset = 0
  ts.forEach((t, j) => {
    const w = (sizes[j] as number) * inner
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * w, (o + 1) * w), o * total * inner + offset)
    offset += w
  })
  return Autograd.result("concat", ts, out, shape, (g) => splitData(g, sizes, d))
}

const splitData = (t: Tensor.Tensor, sizes: ReadonlyArray<number>, d: number): Array<Tensor.Tensor> => {
  const { outer, n, inner } = around(t.shape, d)
  const out: Array<Tensor.Tensor> = []
  let offset = 0
  for (const s of sizes) {
    const w = s * inner
    const part = DType.allocateUninitialized(t.dtype, outer * w)
    for (let o = 0; o < outer; o++) part.set(t.data.subarray(o * n * inner + offset, o * n * inner + offset + w), o * w)
    out.push(
      Tensor.fromStorage(
        part,
        t.shape.map((x, i) => (i === d ? s : x)),
        { device: t.device },
      ),
    )
    offset += w
  }
  return out
}

/**
 * Cuts `t` along `dim` into pieces of the given sizes (which must add up to the dim).
 * @category combinators
 */
export const split = (t: Tensor.Tensor, sizes: ReadonlyArray<number>, dim: number): Array<Tensor.Tensor> => {
  const d = normaliseDim("split", t.rank, dim)
  const total = sizes.reduce((a, b) => a + b, 0)
  if (total !== t.shape[d] || sizes.some((s) => !Number.isInteger(s) || s < 0)) {
    throw TensorError.shape("split", `sizes [${sizes.join(", ")}] do not add up to dim ${d} of ${TensorError.formatShape(t.shape)}`)
  }
  const pieces = splitData(t, sizes, d)
  // Each piece is its own op output; its backward places the gradient in a zero tensor of t's shape.
  let offset = 0
  return pieces.map((piece, j) => {
    const start = offset
    offset += sizes[j] as number
    return Autograd.result("split", [t], piece.data, piece.shape, (g) => {
      const full = DType.allocate(g.dtype, t.size)
      const { outer, n, inner } = around(t.shape, d)
      const w = (sizes[j] as number) * inner
      for (let o = 0; o < outer; o++) full.set(g.data.subarray(o * w, (o + 1) * w), o * n * inner + start * inner)
      return [Tensor.fromStorage(full, t.shape, { device: g.device })]
    })
  })
}
