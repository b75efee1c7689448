/**
 * CpuDispatch: the MoE dispatch kernels of the CPU addon (cuda/src/kernels/dispatch.h): the
 * dispatch plan of a routing mask (a counting sort), permute fused with the gather of each
 * row's prob, unpermute fused with the weighting and the sum, and unpermute's backward, all on
 * float32. Undefined where the addon is not built or is a build without them: the callers
 * (src/moe/Permute.ts) then run their TypeScript loops, which are the specification and give
 * the same bits.
 *
 * Shape legend: T tokens, E experts, N routed rows, C columns.
 */
import { addonIfBuilt } from "./CpuAddon.js"

/**
 * The kernels, as the binding exports them (cuda/src/dispatch_binding.cc says what each does).
 * @category models
 */
export interface DispatchKernels {
  /** counts [E] = the rows of each expert of mask [T * E]; returns N. */
  routingCounts(mask: Uint8Array, tokens: number, experts: number, counts: Int32Array): number
  /** sortedTokens, sortedExperts [N]: the rows expert-major, token-ascending. */
  routingOrder(mask: Uint8Array, tokens: number, experts: number, sortedTokens: Int32Array, sortedExperts: Int32Array): void
  /**
   * out [N, outCols] (outCols = cols, or cols + 1 for the prob column) = src rows of index;
   * with probs [T * E] the prob of row j (probs[index[j] * E + experts[j]]) goes to the column
   * and / or probsOut [N].
   */
  permuteRows(
    src: Float32Array,
    cols: number,
    index: Int32Array,
    out: Float32Array,
    outCols: number,
    probs: Float32Array | null,
    experts: Int32Array | null,
    numExperts: number,
    probsOut: Float32Array | null,
  ): void
  /** out [N, srcCols - 1] = the rows of src [R, srcCols] named by index; lastOut [N] their last column. */
  /**
   * out [T, cols] (cols + 1 with extra [N]) = 0 + the sum, in increasing j, of weights[j] *
   * rows[j, 0:cols] (rows [N, rowCols]); out[t, cols] likewise sums extra.
   */
  combineRows(
    rows: Float32Array,
    rowCols: number,
    index: Int32Array,
    weights: Float32Array | null,
    extra: Float32Array | null,
    tokens: number,
    cols: number,
    out: Float32Array,
  ): void
  /**
   * combineRows on rows that lie in several buffers: row j is row sourceRow[j] of
   * sources[source[j]] (rows of `cols` floats), times weights[j] where given; out [T, cols].
   */
  combineRowsFrom(
    sources: ReadonlyArray<Float32Array>,
    source: Int32Array,
    sourceRow: Int32Array,
    index: Int32Array,
    weights: Float32Array | null,
    tokens: number,
    cols: number,
    out: Float32Array,
  ): void
  /** out [N, cols] row j = row sourceRow[j] of sources[source[j]] (rows of `cols` floats). */
  gatherRowsFrom(sources: ReadonlyArray<Float32Array>, source: Int32Array, sourceRow: Int32Array, cols: number, out: Float32Array): void
  /** gradRows [N, C] = weights[j] * g[index[j]]; gradWeights [N] = dot(g[index[j]], rows[j]) (float32 products, float64 sum in order). */
  combineBackward(
    g: Float32Array,
    index: Int32Array,
    cols: number,
    weights: Float32Array,
    rows: Float32Array,
    gradRows: Float32Array | null,
    gradWeights: Float32Array | null,
  ): void
  /** out [T * E] += values[j * stride] at index[j] * E + experts[j], in increasing j. */
  scatterPairs(values: Float32Array, stride: number, index: Int32Array, experts: Int32Array, numExperts: number, out: Float32Array): void
}

const names = ["routingCounts", "routingOrder", "permuteRows", "combineRows", "combineRowsFrom", "gatherRowsFrom", "combineBackward", "scatterPairs"] as const

let cached: { readonly kernels: DispatchKernels | undefined } | undefined

/**
 * The dispatch kernels, or undefined without a build that has all of them (looked up once).
 * @category kernels
 */
export const dispatchKernels = (): DispatchKernels | undefined => {
  if (cached !== undefined) return cached.kernels
  const loaded = addonIfBuilt() as (Partial<DispatchKernels> & object) | undefined
  const complete = loaded !== undefined && names.every((name) => typeof loaded[name] === "function")
  cached = { kernels: complete ? (loaded as DispatchKernels) : undefined }
  return cached.kernels
}

/**
 * Whether the native path is switched off for this process (PLEAT_NATIVE_DISPATCH=off), so the
 * TypeScript loops run even with the addon: the properties compare the two this way.
 * @category kernels
 */
let forcedOff = process.env.PLEAT_NATIVE_DISPATCH === "off"

/**
 * Turns the native dispatch path off (true) or back on (false) for this process; returns the
 * previous setting. For the properties that compare both paths.
 * @category kernels
 */
export const setNativeDispatchOff = (off: boolean): boolean => {
  const before = forcedOff
  forcedOff = off
  return before
}

/**
 * The kernels the callers should use now: undefined when absent or switched off.
 * @category kernels
 */
export const activeDispatchKernels = (): DispatchKernels | undefined => (forcedOff ? undefined : dispatchKernels())
