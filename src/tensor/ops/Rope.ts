/**
 * RoPE: rotary position embedding of queries or keys, rotate-half convention.
 *
 * Shapes: x [B, S, heads, D] (D even) -> the same shape.
 *
 * Element pairs (i, i + D/2) of each head vector are rotated by the angle
 * pos * theta^(-2i/D), i in 0..D/2-1:
 *   out_i       = x_i cos - x_{i+D/2} sin
 *   out_{i+D/2} = x_{i+D/2} cos + x_i sin
 * A rotation keeps the norm of every pair, and position 0 is the identity.
 *
 * Positions default to 0..S-1. A context-parallel chunk passes the real positions of its tokens
 * (`positions`: S entries shared by every batch entry, or B*S entries, one per token in [B, S]
 * order), so that its rotation matches the one the whole sequence would get. Any integer is
 * accepted (a negative position rotates the other way). Angles are computed in float64.
 *
 * Backward: the inverse rotation (angle -> -angle) applied to the gradient.
 */
import * as CpuElementwise from "../../native/CpuElementwise.js"
import * as Autograd from "../Autograd.js"
import * as DType from "../DType.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * Options of rope.
 * @category models
 */
export interface RopeOptions {
  /** Positions of the tokens: S entries (every batch entry) or B*S entries (default 0..S-1). */
  readonly positions?: Int32Array | undefined
  /** The frequency base (default 10000). */
  readonly theta?: number | undefined
}

/**
 * cos and sin per (token, pair): [rows, D/2] each.
 * @category models
 */
export interface RopeTables {
  readonly cos: Float64Array
  readonly sin: Float64Array
  /** Rows of the tables: S when shared by every batch entry, else B*S. */
  readonly rows: number
}

/**
 * Tables already computed, by the positions they are for (undefined: plain 0..S-1), S, D and
 * theta: every layer and step asks for the same few (a context-parallel rank's positions, or
 * plain ones, fixed for the job). Positions are compared element by element (O(S) against the
 * table's O(S D) sines and cosines).
 */
const known: Array<{ readonly key: string; readonly positions: Int32Array | undefined; readonly tables: RopeTables }> = []

/** How many tables are kept (a few shapes per job). */
const tablesKept = 16

const samePositions = (a: Int32Array | undefined, b: Int32Array | undefined): boolean => {
  if (a === undefined || b === undefined) return a === b
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const tables = (b: number, s: number, d: number, theta: number, positions: Int32Array | undefined): RopeTables => {
  const key = `${b},${s},${d},${theta}`
  const hit = known.find((t) => t.key === key && samePositions(t.positions, positions))
  if (hit !== undefined) return hit.tables
  const made = computeTables(b, s, d, theta, positions)
  if (known.length >= tablesKept) known.shift()
  known.push({ key, positions: positions === undefined ? undefined : Int32Array.from(positions), tables: made })
  return made
}

const computeTables = (b: number, s: number, d: number, theta: number, positions: Int32Array | undefined): RopeTables => {
  const half = d / 2
  const rows = positions !== undefined && positions.length === b * s && b !== 1 ? b * s : s
  const cos = new Float64Array(rows * half)
  const sin = new Float64Array(rows * half)
  const inverseFrequency = new Float64Array(half)
  for (let i = 0; i < half; i++) inverseFrequency[i] = theta ** ((-2 * i) / d)
  for (let r = 0; r < rows; r++) {
    const pos = positions === undefined ? r : (positions[r] as number)
    for (let i = 0; i < half; i++) {
      const angle = pos * (inverseFrequency[i] as number)
      cos[r * half + i] = Math.cos(angle)
      sin[r * half + i] = Math.sin(angle)
    }
  }
  return { cos, sin, rows }
}

/** Rotates every pair of src by the tables (sign +1) or by their inverse (sign -1). */
const rotate = (src: DType.Storage, shape: ReadonlyArray<number>, t: RopeTables, sign: 1 | -1): DType.Storage => {
  const [b, s, heads, d] = shape as [number, number, number, number]
  // Every pair of every head is written below (or by the kernel, the same bits).
  const out = DType.allocateUninitialized(DType.of(src), src.length)
  const kernel = CpuElementwise.ropeKernel()
  if (kernel !== undefined) {
    kernel(src, t.cos, t.sin, out, { b, s, heads, d, tableRows: t.rows }, sign)
    return out
  }
  return rotateLoop(src, out, shape, t, sign)
}

/**
 * `rotate` in TypeScript: the specification the native kernel reproduces bit for bit.
 * @category kernels
 */
export const rotateLoop = (src: DType.Storage, out: DType.Storage, shape: ReadonlyArray<number>, t: RopeTables, sign: 1 | -1): DType.Storage => {
  const [b, s, heads, d] = shape as [number, number, number, number]
  const half = d / 2
  for (let bi = 0; bi < b; bi++) {
    for (let si = 0; si < s; si++) {
      const row = (t.rows === s ? si : bi * s + si) * half
      for (let h = 0; h < heads; h++) {
        const base = ((bi * s + si) * heads + h) * d
        for (let i = 0; i < half; i++) {
          const c = t.cos[row + i] as number
          const sn = sign * (t.sin[row + i] as number)
          const x0 = src[base + i] as number
          const x1 = src[base + i + half] as number
          out[base + i] = x0 * c - x1 * sn
          out[base + i + half] = x1 * c + x0 * sn
        }
      }
    }
  }
  return out
}

/**
 * x [B, S, heads, D] with each head vector rotated by its token's position.
 * @category combinators
 */
export const rope = (x: Tensor.Tensor, options: RopeOptions = {}): Tensor.Tensor => {
  if (x.rank !== 4) throw TensorError.shape("rope", `x must be [B, S, heads, D], got ${TensorError.formatShape(x.shape)}`)
  const [b, s, , d] = x.shape as [number, number, number, number]
  if (d % 2 !== 0) throw TensorError.shape("rope", `the head dim D must be even, got ${d} in ${TensorError.formatShape(x.shape)}`)
  const theta = options.theta ?? 10000
  if (!(theta > 0) || !Number.isFinite(theta)) throw TensorError.shape("rope", `theta must be a finite number > 0, got ${theta}`)
  const positions = options.positions
  if (positions !== undefined && positions.length !== s && positions.length !== b * s) {
    throw TensorError.shape("rope", `${positions.length} positions for x ${TensorError.formatShape(x.shape)}: needs S = ${s} (shared by the batch) or B*S = ${b * s}`)
  }
  const t = tables(b, s, d, theta, positions)
  const out = rotate(x.readHost(), x.shape, t, 1)
  return Autograd.result("rope", [x], out, x.shape, (g) => [Tensor.fromStorage(rotate(g.readHost(), x.shape, t, -1), x.shape, { device: g.device })])
}
