/**
 * Shape ops: reshape and row slices (views, no copy), transpose, concat and split (copies).
 */
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as DType from "../DType.js"
import * as SwapDims from "../kernels/SwapDims.js"
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

/**
 * Exchanges dims `dim0` and `dim1` (a copy, so the result stays contiguous).
 * @category combinators
 */
export const transpose = (t: Tensor.Tensor, dim0: number, dim1: number): Tensor.Tensor => {
  const d0 = normaliseDim("transpose", t.rank, dim0)
  const d1 = normaliseDim("transpose", t.rank, dim1)
  const out = swapped(t, d0, d1)
  return Autograd.result("transpose", [t], out.values, out.tensor.shape, (g) => [swapped(g, d0, d1).tensor])
}

/** `t` with dims d0 and d1 exchanged, where it is (no tape). */
const swapped = (t: Tensor.Tensor, d0: number, d1: number): { readonly values: Place.Buffer; readonly tensor: Tensor.Tensor } => {
  const { dims, shape } = SwapDims.of(t.shape, d0, d1)
  const place = Place.of("transpose", t)
  const out = place.allocate(t.dtype, t.size)
  place.elementwise.swapDims(place.operand(t), out, dims)
  return { values: out, tensor: Place.tensor(out, shape, t.device) }
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
  // Where the inputs are: a device's concat is its copies of ranges (no trip through the host).
  const place = Place.of("concat", ...ts)
  const out = place.allocate(first.dtype, Tensor.sizeOf(shape))
  let offset = 0
  ts.forEach((t, j) => {
    const w = (sizes[j] as number) * inner
    const src = place.operand(t)
    if (w > 0) for (let o = 0; o < outer; o++) place.copyRange(src, o * w, out, o * total * inner + offset, w)
    offset += w
  })
  return Autograd.result("concat", ts, out, shape, (g) => splitData(g, sizes, d))
}

/** The pieces of `t` along `d` (copies, where `t` is). */
const splitData = (t: Tensor.Tensor, sizes: ReadonlyArray<number>, d: number): Array<Tensor.Tensor> => {
  const { outer, n, inner } = around(t.shape, d)
  const place = Place.of("split", t)
  const src = place.operand(t)
  const out: Array<Tensor.Tensor> = []
  let offset = 0
  for (const s of sizes) {
    const w = s * inner
    const part = place.allocate(t.dtype, outer * w)
    if (w > 0) for (let o = 0; o < outer; o++) place.copyRange(src, o * n * inner + offset, part, o * w, w)
    out.push(
      Place.tensor(
        part,
        t.shape.map((x, i) => (i === d ? s : x)),
        t.device,
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
    return Autograd.result("split", [t], piece.values(), piece.shape, (g) => {
      const place = Place.of("split", g)
      const full = place.zeros(g.dtype, t.size)
      const { outer, n, inner } = around(t.shape, d)
      const w = (sizes[j] as number) * inner
      const src = place.operand(g)
      if (w > 0) for (let o = 0; o < outer; o++) place.copyRange(src, o * w, full, o * n * inner + start * inner, w)
      return [Place.tensor(full, t.shape, g.device)]
    })
  })
}
