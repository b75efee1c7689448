/**
 * TopK: the k largest entries of every row of the last dim, with their indices (MoE routing).
 *
 * Shapes: x [..., E] -> values [..., k] (a tensor) and indices [..., k] (a flat Int32Array in
 * the same row-major order as `values`, not a tensor: indices carry no gradient).
 *
 * Order is deterministic, so every rank of an expert-parallel group routes a token the same way:
 *   - entries come out by value descending;
 *   - ties go to the LOWER index (equal values come out by index ascending), so a row of equal
 *     values picks 0..k-1;
 *   - NaN ranks below every number, -Infinity included (NaNs among themselves by index
 *     ascending): a NaN is chosen only when fewer than k numbers remain. Not rejecting NaN keeps
 *     routing total; the tape's non-finite guard is the place to catch NaN logits;
 *   - -0 and +0 are equal (a tie).
 *
 * Selection keeps a sorted buffer of the best k seen so far and scans the row once
 * (O(E * k) worst case, O(E) typical for the small k of routing).
 *
 * Backward of `values`: the gradient of each chosen entry goes back to its position in x, every
 * other position gets 0.
 */
import * as Autograd from "../Autograd.js"
import * as DType from "../DType.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * The result of topk: `indices[i]` is the position in its row of x of `values.data[i]`.
 * @category models
 */
export interface TopK {
  readonly values: Tensor.Tensor
  readonly indices: Int32Array
}

/** Whether value v (at a later index) ranks strictly above value w (at an earlier index). */
const beats = (v: number, w: number): boolean => v > w || (Number.isNaN(w) && !Number.isNaN(v))

/**
 * The k largest entries of each row of the last dim (ties to the lower index, NaN last).
 * @category combinators
 */
export const topk = (x: Tensor.Tensor, k: number): TopK => {
  const e = x.shape[x.rank - 1]
  if (e === undefined) throw TensorError.shape("topk", `needs at least 1 dim, got ${TensorError.formatShape(x.shape)}`)
  if (!Number.isInteger(k) || k < 0 || k > e) {
    throw TensorError.shape("topk", `k ${k} is outside 0..${e} for x ${TensorError.formatShape(x.shape)} (k counts entries of the last dim)`)
  }
  const lead = x.shape.slice(0, -1)
  const rows = Tensor.sizeOf(lead)
  const xs = x.data
  const values = DType.allocate(x.dtype, rows * k)
  const indices = new Int32Array(rows * k)
  // Sorted best-so-far buffer of one row: bestV[0] ranks highest.
  const bestV = new Float64Array(k)
  const bestI = new Int32Array(k)
  for (let r = 0; r < rows; r++) {
    const base = r * e
    let filled = 0
    for (let j = 0; j < e && k > 0; j++) {
      const v = xs[base + j] as number
      // Entries seen earlier have lower indices, so v must strictly beat to move ahead of them.
      if (filled === k && !beats(v, bestV[k - 1] as number)) continue
      let p = filled === k ? k - 1 : filled
      while (p > 0 && beats(v, bestV[p - 1] as number)) {
        bestV[p] = bestV[p - 1] as number
        bestI[p] = bestI[p - 1] as number
        p--
      }
      bestV[p] = v
      bestI[p] = j
      if (filled < k) filled++
    }
    for (let t = 0; t < k; t++) {
      values[r * k + t] = bestV[t] as number
      indices[r * k + t] = bestI[t] as number
    }
  }
  const shape = [...lead, k]
  const result = Autograd.result("topk", [x], values, shape, (g) => {
    const dx = DType.allocate(g.dtype, x.size)
    const gy = g.data
    for (let r = 0; r < rows; r++) {
      for (let t = 0; t < k; t++) {
        const at = r * e + (indices[r * k + t] as number)
        dx[at] = (dx[at] as number) + (gy[r * k + t] as number)
      }
    }
    return [Tensor.fromStorage(dx, x.shape, { device: g.device })]
  })
  return { values: result, indices }
}
