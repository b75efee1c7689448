/**
 * CpuElementwise: the element-wise kernels of the CPU addon (cuda/src/kernels/elementwise.h):
 * add, sub, mul and div with the broadcasts models use (equal shapes, a suffix such as a bias,
 * one value per row such as a router prob), a scale by a number, and the two sums that undo
 * those broadcasts in backward. Each gives the same bits as the TypeScript loop it replaces
 * (one IEEE operation per element, the sums in the same order and precision), so callers may
 * take either. Undefined where the build lacks them (the callers' loops run then).
 */
import { addonIfBuilt } from "./CpuAddon.js"

type Floats = Float32Array | Float64Array

/**
 * The binary operations, numbered as the kernel takes them.
 * @category models
 */
export const BinaryOp = { add: 0, sub: 1, mul: 2, div: 3 } as const

/**
 * How b lines up with a: equal lengths, b repeating (a suffix of a's shape), one b per row.
 * @category models
 */
export const BroadcastKind = { same: 0, suffix: 1, rows: 2 } as const

/**
 * The kernels; every array of one call has the same type.
 * @category models
 */
export interface ElementwiseKernels {
  /** out[i] = a[i] op b[j]: j = i (same), i % width (suffix), floor(i / width) (rows). */
  readonly binary: (op: number, kind: number, a: Floats, b: Floats, out: Floats, width: number) => void
  /** out[i] = a[i] * s, computed in double and rounded once. */
  readonly scale: (a: Floats, s: number, out: Floats) => void
  /** out[r] = the double sum, in index order, of row r (rows of `width`). */
  readonly sumRows: (g: Floats, out: Floats, width: number) => void
  /** out[j] = the sum, rounded at each add and in index order, of g[i] over i % width == j. */
  readonly sumSuffix: (g: Floats, out: Floats, width: number) => void
}

/**
 * RoPE's rotation (cuda/src/kernels/rope.h): x [b, s, heads, d] into out of x's type, cos and sin
 * [tableRows, d / 2] (tableRows s, shared by the batch, or b * s), sign 1 (rotate) or -1 (the
 * inverse); the float64 arithmetic of tensor/ops/Rope.ts's loop, the same bits.
 * @category models
 */
export type RopeKernel = (
  x: Floats,
  cos: Float64Array,
  sin: Float64Array,
  out: Floats,
  dims: { readonly b: number; readonly s: number; readonly heads: number; readonly d: number; readonly tableRows: number },
  sign: 1 | -1,
) => void

interface RopeAddon {
  ropeRotate?(x: Floats, cos: Float64Array, sin: Float64Array, out: Floats, b: number, s: number, heads: number, d: number, tableRows: number, sign: number): void
}

let ropeCached: RopeKernel | null | undefined

/**
 * The RoPE kernel when the addon has it (looked up once); undefined otherwise (the caller's loop
 * runs then).
 * @category kernels
 */
export const ropeKernel = (): RopeKernel | undefined => {
  if (ropeCached === undefined) {
    const loaded = addonIfBuilt() as RopeAddon | undefined
    const rotate = loaded?.ropeRotate
    ropeCached = rotate === undefined ? null : (x, cos, sin, out, d, sign) => rotate.call(loaded, x, cos, sin, out, d.b, d.s, d.heads, d.d, d.tableRows, sign)
  }
  return ropeCached ?? undefined
}

interface ElementwiseAddon {
  elementwiseBinary?(op: number, kind: number, a: Floats, b: Floats, out: Floats, width: number): void
  elementwiseScale?(a: Floats, s: number, out: Floats): void
  sumRows?(g: Floats, out: Floats, width: number): void
  sumSuffix?(g: Floats, out: Floats, width: number): void
}

let cached: ElementwiseKernels | null | undefined

/**
 * The kernels when the addon has them (looked up once); undefined otherwise.
 * @category kernels
 */
export const elementwiseKernels = (): ElementwiseKernels | undefined => {
  if (cached === undefined) {
    const loaded = addonIfBuilt() as ElementwiseAddon | undefined
    const { elementwiseBinary: binary, elementwiseScale: scale, sumRows, sumSuffix } = loaded ?? {}
    cached =
      loaded === undefined || binary === undefined || scale === undefined || sumRows === undefined || sumSuffix === undefined
        ? null
        : {
            binary: (op, kind, a, b, out, width) => binary.call(loaded, op, kind, a, b, out, width),
            scale: (a, s, out) => scale.call(loaded, a, s, out),
            sumRows: (g, out, width) => sumRows.call(loaded, g, out, width),
            sumSuffix: (g, out, width) => sumSuffix.call(loaded, g, out, width),
          }
  }
  return cached ?? undefined
}
