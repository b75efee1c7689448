/**
 * SwapDims: the copy that exchanges two dims of a row-major array (transpose). The shape is seen
 * as [a, n0, b, n1, c] (the dims before the first swapped one, the first, those between, the
 * second, those after) and written as [a, n1, b, n0, c]: blocks of c elements move whole.
 *
 * On the host: blocks of `gatherFrom` elements or more move as the rows of one gather (the
 * dtype's kernel), shorter ones by the loop. A device's twin (DeviceKernels.swapDims; CUDA:
 * swap_dims_element in elementwise_element.h) copies the same elements: the same bits.
 */
import * as DType from "../DType.js"
import * as Kernels from "./Kernels.js"
import { reference } from "./Reference.js"

/**
 * The five extents of a swap (see the file header).
 * @category models
 */
export interface SwapDims {
  readonly a: number
  readonly n0: number
  readonly b: number
  readonly n1: number
  readonly c: number
}

/** The product of shape[from..to). */
const span = (shape: ReadonlyArray<number>, from: number, to: number): number => {
  let p = 1
  for (let i = from; i < to; i++) p *= shape[i] as number
  return p
}

/**
 * The extents of swapping dims d0 and d1 of `shape` (either order), and the shape it makes.
 * @category constructors
 */
export const of = (shape: ReadonlyArray<number>, dim0: number, dim1: number): { readonly dims: SwapDims; readonly shape: Array<number> } => {
  const [d0, d1] = dim0 <= dim1 ? [dim0, dim1] : [dim1, dim0]
  const out = [...shape]
  out[d0] = shape[d1] as number
  out[d1] = shape[d0] as number
  // Equal dims swap nothing: one block of everything.
  if (d0 === d1) return { dims: { a: 1, n0: 1, b: 1, n1: 1, c: span(shape, 0, shape.length) }, shape: out }
  return { dims: { a: span(shape, 0, d0), n0: shape[d0] as number, b: span(shape, d0 + 1, d1), n1: shape[d1] as number, c: span(shape, d1 + 1, shape.length) }, shape: out }
}

/** Blocks of at least this many elements move as rows of one gather (a view per block cost more). */
const gatherFrom = 8

/**
 * out = src with the dims of `d` exchanged (same dtype and length).
 * @category kernels
 */
export const swapInto = (src: DType.Storage, out: DType.Storage, d: SwapDims): void => {
  const { a, n0, b, n1, c } = d
  if (c >= gatherFrom) {
    // Blocks of c elements are rows: one row gather (the dtype's kernel) in the output's order.
    const index = new Int32Array(a * n1 * b * n0)
    let r = 0
    for (let ia = 0; ia < a; ia++) for (let j1 = 0; j1 < n1; j1++) for (let ib = 0; ib < b; ib++) for (let j0 = 0; j0 < n0; j0++) index[r++] = ((ia * n0 + j0) * b + ib) * n1 + j1
    Kernels.forDType(DType.of(src), reference).gatherRows(src, index, out, c)
    return
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
}
