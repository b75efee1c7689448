/**
 * RMSNorm: x / sqrt(mean(x^2) + eps) * weight over the last dim.
 *
 * Shapes: x [..., H], weight [H] -> [..., H]; each leading index is a row of H elements.
 *
 * The forward pass runs on the dtype's `rmsnormRows` kernel, which also hands back the
 * reciprocal RMS of every row (rstd) for the backward pass, so backward never recomputes it.
 * A row of H = 0 elements has mean 0, so rstd = 1/sqrt(eps) and the (empty) output is fine.
 * eps = 0 is allowed; then an all-zero row gives NaN (0 * Infinity), as the formula says.
 *
 * Backward, per row with r = rstd, g = dy and H the row length:
 *   dx_k = r * (g_k w_k - x_k * r^2 * sum_j(g_j w_j x_j) / H)
 *   dw_j = sum over rows of g_j * x_j * r
 */
import * as Autograd from "../Autograd.js"
import * as DType from "../DType.js"
import { isDeviceArray } from "../device/DeviceRuntime.js"
import * as Place from "../device/Place.js"
import * as StorageRecycler from "../StorageRecycler.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * RMSNorm of x over its last dim, scaled by `weight` (default eps 1e-6).
 * @category combinators
 */
export const rmsNorm = (x: Tensor.Tensor, weight: Tensor.Tensor, eps = 1e-6): Tensor.Tensor => {
  Autograd.sameKind("rmsNorm", x, weight)
  const cols = x.shape[x.rank - 1]
  if (cols === undefined || weight.rank !== 1 || weight.shape[0] !== cols) {
    throw TensorError.shape("rmsNorm", `weight ${TensorError.formatShape(weight.shape)} must be [H] where x ${TensorError.formatShape(x.shape)} is [..., H]`)
  }
  if (!(eps >= 0)) throw TensorError.shape("rmsNorm", `eps must be >= 0, got ${eps}`)
  const rows = Tensor.sizeOf(x.shape.slice(0, -1))
  const place = Place.of("rmsNorm", x, weight)
  const out = place.allocate(x.dtype, x.size)
  // rstd in float64 whatever the dtype, so the backward pass does not inherit a float32 rounding.
  const rstd = place.zeros("float64", rows)
  place.kernels(x.dtype).rmsnormRows(place.operand(x), place.operand(weight), out, rstd, rows, cols, eps)
  return Autograd.result("rmsNorm", [x, weight], out, x.shape, (g) => {
    const dx = x.requiresGrad ? place.allocate(g.dtype, x.size) : undefined
    const dw = weight.requiresGrad ? place.zeros("float64", cols) : undefined
    place.kernels(g.dtype).rmsnormBackward(place.operand(x), place.operand(weight), place.operand(g), rstd, rows, cols, dx, dw)
    // The weight's float64 sums become its dtype where they are (cols values).
    const wGrad = dw === undefined ? undefined : place.allocate(g.dtype, cols)
    if (wGrad !== undefined && dw !== undefined) {
      place.copy(dw, wGrad)
      // The float64 sums were this rule's alone.
      if (!isDeviceArray(dw)) StorageRecycler.recycle(dw)
    }
    return [dx === undefined ? undefined : Place.tensor(dx, x.shape, g.device), wGrad === undefined ? undefined : Place.tensor(wGrad, weight.shape, g.device)]
  })
}

/**
 * The reciprocal RMS of rows from their sums of squares: 1 / sqrt(sumSquares / count + eps),
 * elementwise (an RMSNorm whose rows are split over ranks sums its squares across them first,
 * then scales each part by this: SelfAttention's q/k norm over the heads under tp).
 *
 * Backward: d/ds (s / n + eps)^(-1/2) = -(1 / 2n) r^3.
 * @category combinators
 */
export const inverseRms = (sumSquares: Tensor.Tensor, count: number, eps: number): Tensor.Tensor => {
  const s = sumSquares.readHost()
  const out = DType.allocate(sumSquares.dtype, sumSquares.size)
  for (let i = 0; i < s.length; i++) out[i] = 1 / Math.sqrt((s[i] as number) / count + eps)
  return Autograd.result("inverseRms", [sumSquares], out, sumSquares.shape, (g) => {
    const gs = g.readHost()
    const dx = DType.allocate(g.dtype, g.size)
    for (let i = 0; i < gs.length; i++) {
      const r = out[i] as number
      dx[i] = (gs[i] as number) * (-0.5 / count) * r * r * r
    }
    return [Tensor.fromStorage(dx, sumSquares.shape)]
  })
}
