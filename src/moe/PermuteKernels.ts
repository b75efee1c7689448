/**
 * PermuteKernels: Permute's float32 path on the native dispatch kernels (src/native/CpuDispatch.ts),
 * as autograd ops. Each op is one pass over the rows it moves and gives the same bits as the
 * composition of tensor ops it replaces (Permute.ts keeps that composition as the fallback and
 * the specification; properties/moe/PermuteNative.prop.ts compares the two):
 *
 *   order        counting sort of the mask: the rows expert-major, token-ascending, and the counts
 *   gather       out[j] = src[index[j]]                      (gatherRows; backward: combine)
 *   combine      out[t] = 0 + sum over j of t, increasing j, of w[j] * rows[j]
 *                                                            (mul by the weight column, then
 *                                                            scatterAddRows; backward: gather,
 *                                                            w[j] * g[t_j] and dot(g[t_j], rows[j]))
 *   pairs        probs[t_j, e_j] of every row                (gatherRows on the flat probs)
 *   inPlace      the rows themselves, for a chunk order that moves nothing: no pass forward;
 *                backward 0 + g, the gather's scatter-add (gatherRows with 0, 1, ...)
 *
 * Callers check shapes and dtypes first (float32 storage everywhere, ranks as documented). On a
 * device the same ops run on the device's dispatch kernels (the index lists stay host arrays).
 */
import type { DispatchKernels } from "../native/CpuDispatch.js"
import * as Autograd from "../tensor/Autograd.js"
import type { DeviceArray, DeviceRuntime } from "../tensor/device/DeviceRuntime.js"
import * as Place from "../tensor/device/Place.js"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as RoutingMap from "./RoutingMap.js"

const f32 = (t: Tensor.Tensor): Float32Array => t.readHost() as Float32Array
const zeros = (size: number): Float32Array => DType.allocate("float32", size) as Float32Array

/**
 * The dispatch kernels where an op's tensors live: the host's (`k`) or their device's, over
 * tensors' values and new buffers of the same place (one op's code for both).
 */
const on = (k: DispatchKernels, op: string, ...tensors: ReadonlyArray<Tensor.Tensor>) => {
  const rt = Place.of(op, ...tensors).runtime
  const dev = (t: Tensor.Tensor): DeviceArray => t.deviceArray(rt as DeviceRuntime)
  return {
    device: tensors[0]?.device,
    allocate: (size: number): Place.Buffer => (rt === undefined ? DType.allocateUninitialized("float32", size) : rt.allocate("float32", size)),
    permuteRows: (
      src: Tensor.Tensor,
      cols: number,
      index: Int32Array,
      out: Place.Buffer,
      probs?: { readonly t: Tensor.Tensor; readonly experts: Int32Array; readonly out: Place.Buffer },
    ) =>
      rt === undefined
        ? k.permuteRows(
            f32(src),
            cols,
            index,
            out as Float32Array,
            cols,
            probs === undefined ? null : f32(probs.t),
            probs?.experts ?? null,
            probs?.t.shape[1] ?? 0,
            (probs?.out ?? null) as Float32Array | null,
          )
        : rt.kernels.permuteRows(
            dev(src),
            cols,
            index,
            out as DeviceArray,
            cols,
            probs === undefined ? null : dev(probs.t),
            probs?.experts ?? null,
            probs?.t.shape[1] ?? 0,
            (probs?.out ?? null) as DeviceArray | null,
          ),
    combineRows: (rows: Tensor.Tensor, cols: number, index: Int32Array, weights: Tensor.Tensor | undefined, tokens: number, out: Place.Buffer) =>
      rt === undefined
        ? k.combineRows(f32(rows), cols, index, weights === undefined ? null : f32(weights), null, tokens, cols, out as Float32Array)
        : rt.kernels.combineRows(dev(rows), cols, index, weights === undefined ? null : dev(weights), tokens, cols, out as DeviceArray),
    combineBackward: (
      g: Tensor.Tensor,
      index: Int32Array,
      cols: number,
      weights: Tensor.Tensor,
      rows: Tensor.Tensor,
      gradRows: Place.Buffer | null,
      gradWeights: Place.Buffer | null,
    ) =>
      rt === undefined
        ? k.combineBackward(f32(g), index, cols, f32(weights), f32(rows), gradRows as Float32Array | null, gradWeights as Float32Array | null)
        : rt.kernels.combineBackward(dev(g), index, cols, dev(weights), dev(rows), gradRows as DeviceArray | null, gradWeights as DeviceArray | null),
  }
}

/**
 * The rows of the map in expert-major, token-ascending order, and the rows of each expert.
 * @category mapping
 */
export const order = (
  k: DispatchKernels,
  map: RoutingMap.RoutingMap,
): { readonly sortedIndices: Int32Array; readonly experts: Int32Array; readonly tokensPerExpert: Int32Array } => {
  const tokensPerExpert = new Int32Array(map.numExperts)
  const n = k.routingCounts(map.mask, map.numTokens, map.numExperts, tokensPerExpert)
  const sortedIndices = new Int32Array(n)
  const experts = new Int32Array(n)
  k.routingOrder(map.mask, map.numTokens, map.numExperts, sortedIndices, experts)
  return { sortedIndices, experts, tokensPerExpert }
}

/**
 * Rows of src [numRows, ...row] picked by index: [index.length, ...row].
 * @category combinators
 */
export const gather = (k: DispatchKernels, op: string, src: Tensor.Tensor, index: Int32Array, numRows: number): Tensor.Tensor => {
  const rowShape = src.shape.slice(1)
  const cols = Tensor.sizeOf(rowShape)
  const here = on(k, op, src)
  const out = here.allocate(index.length * cols)
  here.permuteRows(src, cols, index, out)
  return Autograd.result(op, [src], out, [index.length, ...rowShape], (g) => [combine(k, "scatterAddRows", g, index, undefined, numRows)])
}

/**
 * Rows [N, ...row] summed onto numTokens rows in increasing j, each times weights[j] [N] when
 * given (rank-2 rows then).
 * @category combinators
 */
export const combine = (k: DispatchKernels, op: string, rows: Tensor.Tensor, index: Int32Array, weights: Tensor.Tensor | undefined, numTokens: number): Tensor.Tensor => {
  const rowShape = rows.shape.slice(1)
  const cols = Tensor.sizeOf(rowShape)
  const here = weights === undefined ? on(k, op, rows) : on(k, op, rows, weights)
  const out = here.allocate(numTokens * cols)
  here.combineRows(rows, cols, index, weights, numTokens, out)
  const shape = [numTokens, ...rowShape]
  if (weights === undefined) return Autograd.result(op, [rows], out, shape, (g) => [gather(k, "gatherRows", g, index, numTokens)])
  return Autograd.result(op, [rows, weights], out, shape, (g) => {
    const gradRows = rows.requiresGrad ? here.allocate(rows.size) : null
    const gradWeights = weights.requiresGrad ? here.allocate(weights.size) : null
    here.combineBackward(g, index, cols, weights, rows, gradRows, gradWeights)
    return [gradRows === null ? undefined : Place.tensor(gradRows, rows.shape, g.device), gradWeights === null ? undefined : Place.tensor(gradWeights, weights.shape, g.device)]
  })
}

/** The gradient of probs [T, E] from values[j * stride] at the pairs (index[j], experts[j]). */
const pairGrad = (k: DispatchKernels, values: Float32Array, stride: number, index: Int32Array, experts: Int32Array, probs: Tensor.Tensor, device: Tensor.Tensor["device"]) => {
  const full = zeros(probs.size)
  k.scatterPairs(values, stride, index, experts, probs.shape[1] as number, full)
  return Tensor.fromStorage(full, probs.shape, { device })
}

/**
 * probs [T, E] at the pairs of the rows: [N], probs[index[j], experts[j]]; with the token rows
 * gathered in the same pass.
 * @category combinators
 */
export const gatherWithPairs = (
  k: DispatchKernels,
  tokens: Tensor.Tensor,
  probs: Tensor.Tensor,
  index: Int32Array,
  experts: Int32Array,
): { readonly rows: Tensor.Tensor; readonly pairs: Tensor.Tensor } => {
  const rowShape = tokens.shape.slice(1)
  const cols = Tensor.sizeOf(rowShape)
  const t = tokens.shape[0] as number
  const here = on(k, "gatherRows", tokens, probs)
  const out = here.allocate(index.length * cols)
  const picked = here.allocate(index.length)
  here.permuteRows(tokens, cols, index, out, { t: probs, experts, out: picked })
  const rows = Autograd.result("gatherRows", [tokens], out, [index.length, ...rowShape], (g) => [combine(k, "scatterAddRows", g, index, undefined, t)])
  const pairs = Autograd.hostResult("gatherRows", [probs], picked, [index.length], (g) => [pairGrad(k, f32(g), 1, index, experts, probs, g.device)])
  return { rows, pairs }
}

/**
 * The rows of src [R, ...] unmoved (sortChunksByIndex with an order that moves nothing): the
 * same storage, and the gradient 0 + g as the gather's scatter-add gives it (a -0 becomes +0).
 * @category combinators
 */
export const inPlace = (k: DispatchKernels, src: Tensor.Tensor, identity: Int32Array): Tensor.Tensor =>
  Autograd.result("gatherRows", [src], src.values(), src.shape, (g) => [combine(k, "scatterAddRows", g, identity, undefined, identity.length)])
