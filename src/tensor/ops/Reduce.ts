/**
 * Reductions: sum and mean over one dim (or over everything).
 */
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as DType from "../DType.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/** Normalises a possibly negative dim, naming the op on failure. */
export const normaliseDim = (op: string, rank: number, dim: number): number => {
  const d = dim < 0 ? dim + rank : dim
  if (!Number.isInteger(d) || d < 0 || d >= rank) {
    throw TensorError.shape(op, `dim ${dim} is out of range for a tensor of rank ${rank}`)
  }
  return d
}

/** outer x n x inner view of a shape around dim d. */
export const around = (shape: ReadonlyArray<number>, d: number) => ({
  outer: Tensor.sizeOf(shape.slice(0, d)),
  n: shape[d] as number,
  inner: Tensor.sizeOf(shape.slice(d + 1)),
})

/** Repeats g (shape without dim d, or with it as 1) n times along dim d. */
const expandAlong = (g: Tensor.Tensor, shape: ReadonlyArray<number>, d: number, factor: number): Tensor.Tensor => {
  const { outer, n, inner } = around(shape, d)
  const out = DType.allocate(g.dtype, Tensor.sizeOf(shape))
  const src = g.data
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const base = (o * n + k) * inner
      for (let i = 0; i < inner; i++) out[base + i] = (src[o * inner + i] as number) * factor
    }
  }
  return Tensor.fromStorage(out, shape, { device: g.device })
}

/**
 * A sum over the last dim of a tensor on a device, there: the kernels' row sums (float64 in
 * index order, rounded once: the host loop's bits); backward, each row's gradient repeated
 * along the row (1 * g, so a -0 stays -0 as the host's expandAlong keeps it).
 */
const rowSumsOnDevice = (op: string, t: Tensor.Tensor, outer: number, n: number, shape: ReadonlyArray<number>): Tensor.Tensor => {
  const place = Place.of(op, t)
  const out = place.allocate(t.dtype, outer)
  place.elementwise.sumRows(place.operand(t), out, n)
  return Autograd.result(op, [t], out, shape, (g) => {
    const here = Place.of(op, g)
    const ones = here.zeros(g.dtype, t.size)
    here.elementwise.binary(0, "suffix", ones, here.operand(Tensor.full([n], 1, { dtype: g.dtype, device: g.device })), ones, n)
    const grad = here.allocate(g.dtype, t.size)
    here.elementwise.binary(2, "rows", ones, here.operand(g), grad, n)
    return [Place.tensor(grad, t.shape, g.device)]
  })
}

const reduce = (op: string, t: Tensor.Tensor, dim: number, keepDim: boolean, mean: boolean): Tensor.Tensor => {
  const d = normaliseDim(op, t.rank, dim)
  const { outer, n, inner } = around(t.shape, d)
  // A tensor on a device summed over its last dim (rows' dot products) stays there.
  if (!mean && inner === 1 && n > 0 && outer > 0 && t.isResident && t.dtype === "float32") {
    return rowSumsOnDevice(op, t, outer, n, keepDim ? t.shape.map((s, i) => (i === d ? 1 : s)) : t.shape.filter((_, i) => i !== d))
  }
  const out = DType.allocate(t.dtype, outer * inner)
  const x = t.data
  // Sum in float64 (JS numbers) whatever the dtype: one rounding at the end.
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = 0
      for (let k = 0; k < n; k++) acc += x[(o * n + k) * inner + i] as number
      out[o * inner + i] = mean ? (n === 0 ? Number.NaN : acc / n) : acc
    }
  }
  const shape = keepDim ? t.shape.map((s, i) => (i === d ? 1 : s)) : t.shape.filter((_, i) => i !== d)
  const factor = mean ? 1 / n : 1
  return Autograd.result(op, [t], out, shape, (g) => [expandAlong(g, t.shape, d, factor)])
}

/**
 * The sum over `dim` (negative counts from the end); `keepDim` keeps it as size 1.
 * @category combinators
 */
export const sum = (t: Tensor.Tensor, dim: number, keepDim = false): Tensor.Tensor => reduce("sum", t, dim, keepDim, false)

/**
 * The mean over `dim`.
 * @category combinators
 */
export const mean = (t: Tensor.Tensor, dim: number, keepDim = false): Tensor.Tensor => reduce("mean", t, dim, keepDim, true)

/**
 * The sum of every element, as a tensor of shape [].
 * @category combinators
 */
export const sumAll = (t: Tensor.Tensor): Tensor.Tensor => {
  const flat = Autograd.result("flatten", [t], t.data, [t.size], (g) => [Tensor.fromStorage(g.data, t.shape, { device: g.device })])
  return sum(flat, 0)
}
