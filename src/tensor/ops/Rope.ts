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
 *
 * With `yarn` the frequencies are YaRN's and cos and sin carry its attention factor m
 * (RopeScaling): out = m R x, whose backward m R^T g is the same tables at -angle.
 */
import * as Autograd from "../Autograd.js"
import type { DeviceArray, DeviceRuntime } from "../device/DeviceRuntime.js"
import * as Place from "../device/Place.js"
import * as DType from "../DType.js"
import * as RopeScaling from "./RopeScaling.js"
import { type RopeTables, rotateInto } from "../kernels/RopeRotate.js"
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
  /** YaRN's or Llama 3's scaled frequencies (and YaRN's attention factor: RopeScaling); none: plain RoPE. */
  readonly scaling?: RopeScaling.Scaling | undefined
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

const tables = (b: number, s: number, d: number, theta: number, positions: Int32Array | undefined, scaling: RopeScaling.Scaling | undefined): RopeTables => {
  const key = `${b},${s},${d},${theta},${RopeScaling.keyOf(scaling)}`
  const hit = known.find((t) => t.key === key && samePositions(t.positions, positions))
  if (hit !== undefined) return hit.tables
  const made = computeTables(b, s, d, theta, positions, scaling)
  if (known.length >= tablesKept) known.shift()
  known.push({ key, positions: positions === undefined ? undefined : Int32Array.from(positions), tables: made })
  return made
}

const computeTables = (b: number, s: number, d: number, theta: number, positions: Int32Array | undefined, scaling: RopeScaling.Scaling | undefined): RopeTables => {
  const half = d / 2
  const rows = positions !== undefined && positions.length === b * s && b !== 1 ? b * s : s
  const cos = new Float64Array(rows * half)
  const sin = new Float64Array(rows * half)
  const inverseFrequency = RopeScaling.inverseFrequencies(d, theta, scaling)
  // YaRN's attention factor scales the rotation (its inverse, by the same tables, too).
  const factor = RopeScaling.ropeFactorOf(scaling)
  for (let r = 0; r < rows; r++) {
    const pos = positions === undefined ? r : (positions[r] as number)
    for (let i = 0; i < half; i++) {
      const angle = pos * (inverseFrequency[i] as number)
      cos[r * half + i] = factor * Math.cos(angle)
      sin[r * half + i] = factor * Math.sin(angle)
    }
  }
  return { cos, sin, rows }
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
  const t = tables(b, s, d, theta, positions, options.scaling)
  const rt = Place.of("rope", x).runtime
  if (rt !== undefined) return ropeOnDevice(rt, x, t)
  const out = rotate(x.readHost(), x.shape, t, 1)
  return Autograd.result("rope", [x], out, x.shape, (g) => [Tensor.fromStorage(rotate(g.readHost(), x.shape, t, -1), x.shape, { device: g.device })])
}

/** Rotates src into new storage (see RopeRotate). */
const rotate = (src: DType.Storage, shape: ReadonlyArray<number>, t: RopeTables, sign: 1 | -1): DType.Storage =>
  rotateInto(src, DType.allocateUninitialized(DType.of(src), src.length), shape, t, sign)

/** The tables uploaded to a device, once per tables and device. */
const uploaded = new WeakMap<RopeTables, Map<DeviceRuntime, { readonly cos: DeviceArray; readonly sin: DeviceArray }>>()

const tablesOn = (rt: DeviceRuntime, t: RopeTables) => {
  let byDevice = uploaded.get(t)
  if (byDevice === undefined) {
    byDevice = new Map()
    uploaded.set(t, byDevice)
  }
  let hit = byDevice.get(rt)
  if (hit === undefined) {
    hit = { cos: rt.upload(t.cos), sin: rt.upload(t.sin) }
    byDevice.set(rt, hit)
  }
  return hit
}

/** rope on a device: the device's rotation kernel, the tables uploaded once. */
const ropeOnDevice = (rt: DeviceRuntime, x: Tensor.Tensor, t: RopeTables): Tensor.Tensor => {
  const [b, s, heads, d] = x.shape as [number, number, number, number]
  const dims = { b, s, heads, d, tableRows: t.rows }
  const dt = tablesOn(rt, t)
  const out = rt.allocate(x.dtype, x.size)
  rt.kernels.rope(x.deviceArray(rt), dt.cos, dt.sin, out, dims, 1)
  return Autograd.result("rope", [x], out, x.shape, (g) => {
    const back = rt.allocate(g.dtype, g.size)
    rt.kernels.rope(g.deviceArray(rt), dt.cos, dt.sin, back, dims, -1)
    return [Place.tensor(back, x.shape, g.device)]
  })
}
