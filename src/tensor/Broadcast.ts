/**
 * Broadcast: numpy-style broadcasting of two shapes, aligned from the trailing dim.
 *
 * Dims are compared from the right; equal dims or a dim of 1 broadcast. The common case in
 * models, a bias whose shape is a suffix of the input's, gets its own fast path (`suffix`).
 */
import * as ElementwiseInto from "./kernels/ElementwiseInto.js"
import * as Tensor from "./Tensor.js"
import * as TensorError from "./TensorError.js"

/**
 * How the elements of two broadcast inputs line up with the output.
 * @category models
 */
export interface Plan {
  readonly shape: ReadonlyArray<number>
  /**
   * "same": equal shapes; "suffix": b repeats over a's leading dims; "rows": b is a's shape
   * with the last dim 1 (one value per row: probs times token rows, the MoE hot path);
   * "general": strides.
   */
  readonly kind: "same" | "suffix" | "rows" | "general"
  /** For "rows": the length of a row (a's last dim). */
  readonly rowLength?: number
  /** For each output flat index, the flat index into a and into b (general plans only). */
  readonly indexA: (i: number) => number
  readonly indexB: (i: number) => number
}

const stridesOf = (shape: ReadonlyArray<number>): Array<number> => {
  const s = new Array<number>(shape.length)
  let acc = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc
    acc *= shape[i] as number
  }
  return s
}

/**
 * The broadcast plan of shapes `a` and `b` for `op`; incompatible dims are a ShapeError.
 * @category constructors
 */
export const plan = (op: string, a: ReadonlyArray<number>, b: ReadonlyArray<number>): Plan => {
  const rank = Math.max(a.length, b.length)
  const shape = new Array<number>(rank)
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1
    const db = b[b.length - rank + i] ?? 1
    if (da !== db && da !== 1 && db !== 1) {
      throw TensorError.shape(op, `cannot broadcast ${TensorError.formatShape(a)} with ${TensorError.formatShape(b)}: dim ${i - rank} is ${da} vs ${db}`)
    }
    shape[i] = da === 1 ? db : da
  }
  const same = Tensor.sameShape(a, b)
  if (same) return { shape, kind: "same", indexA: (i) => i, indexB: (i) => i }
  const bSize = b.reduce((p, d) => p * d, 1)
  const suffix = b.length <= a.length && b.every((d, i) => d === a[a.length - b.length + i])
  if (suffix) return { shape, kind: "suffix", indexA: (i) => i, indexB: (i) => (bSize === 0 ? 0 : i % bSize) }
  const last = a[a.length - 1] ?? 1
  const rowsOfA = a.length === b.length && a.length > 0 && b[b.length - 1] === 1 && a.slice(0, -1).every((d, i) => d === b[i])
  if (rowsOfA && last !== 1) {
    return { shape, kind: "rows", rowLength: last, indexA: (i) => i, indexB: (i) => Math.floor(i / last) }
  }
  const outStrides = stridesOf(shape)
  const mapper = (src: ReadonlyArray<number>) => {
    const srcStrides = stridesOf(src)
    // Stride 0 along broadcast dims; dims missing on the left also broadcast.
    const eff = shape.map((_, i) => {
      const j = src.length - rank + i
      return j < 0 || src[j] === 1 ? 0 : (srcStrides[j] as number)
    })
    return (flat: number) => {
      let idx = 0
      let rest = flat
      for (let d = 0; d < rank; d++) {
        const os = outStrides[d] as number
        const c = Math.floor(rest / os)
        rest -= c * os
        idx += c * (eff[d] as number)
      }
      return idx
    }
  }
  return { shape, kind: "general", indexA: mapper(a), indexB: mapper(b) }
}

/**
 * Sums `grad` (of the broadcast output shape) down to `shape`: the adjoint of broadcasting.
 * @category mapping
 */
export const reduceTo = (grad: Float32Array | Float64Array, outShape: ReadonlyArray<number>, shape: ReadonlyArray<number>, out: Float32Array | Float64Array): void => {
  const p = plan("broadcast-backward", outShape, shape)
  if (p.kind === "same") {
    out.set(grad)
    return
  }
  // The common cases: the backward of a per-row scale (one sum a row) and of a bias.
  if (p.kind === "rows") return ElementwiseInto.sumRowsInto(grad, out, p.rowLength as number)
  if (p.kind === "suffix") return ElementwiseInto.sumSuffixInto(grad, out, out.length)
  out.fill(0)
  const index = p.indexB
  for (let i = 0; i < grad.length; i++) {
    const j = index(i)
    out[j] = (out[j] as number) + (grad[i] as number)
  }
}
