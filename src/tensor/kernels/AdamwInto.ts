/**
 * AdamwInto: AdamW's update of one run of elements in place, the one arithmetic of every
 * optimizer of pleat (the replicated one, the distributed one's buckets, a device's `adamw`):
 *
 *   g' = g * clip
 *   m  = beta1 m + (1 - beta1) g'                     v = beta2 v + (1 - beta2) g' g'
 *   w  = w - lr * (m / c1 / (sqrt(v / c2) + eps) + decay * w)      c1 = 1 - beta1^t, c2 = 1 - beta2^t
 *
 * in float64, each operation rounded on its own, m and v stored as float32. The native kernel
 * (cuda/src/kernels/adamw.h; its CUDA twin adamw_element in ops_element.h) computes the loop's
 * bits; long runs take it when the addon is built.
 */
import * as CpuOptional from "../../native/CpuOptional.js"
import type * as DType from "../DType.js"
import * as Kernels from "./Kernels.js"

/**
 * The scalars of one update (c1 = 1 - beta1^t, c2 = 1 - beta2^t for step t from 1).
 * @category models
 */
export interface AdamwScalars {
  readonly beta1: number
  readonly beta2: number
  readonly c1: number
  readonly c2: number
  readonly eps: number
  readonly lr: number
  /** The gradient's scale (gradient clipping). */
  readonly clip: number
  readonly decay: number
}

const native = Kernels.native() === undefined ? undefined : CpuOptional.adamwKernel()

/**
 * The loop: the specification (w and g of one dtype; m, v float32; all of one length).
 * @category kernels
 */
export const adamwLoop = (w: DType.Storage, g: DType.Storage, m: Float32Array, v: Float32Array, s: AdamwScalars): void => {
  for (let k = 0; k < w.length; k++) {
    const gi = (g[k] as number) * s.clip
    const mk = (m[k] = s.beta1 * (m[k] as number) + (1 - s.beta1) * gi)
    const vk = (v[k] = s.beta2 * (v[k] as number) + (1 - s.beta2) * gi * gi)
    const wi = w[k] as number
    w[k] = wi - s.lr * ((mk as number) / s.c1 / (Math.sqrt((vk as number) / s.c2) + s.eps) + s.decay * wi)
  }
}

/**
 * AdamW on w, g, m, v (see the file header): the native kernel when the native kernels are in
 * use and w and g share a dtype, else the loop; the same bits.
 * @category kernels
 */
export const adamwInto = (w: DType.Storage, g: DType.Storage, m: Float32Array, v: Float32Array, s: AdamwScalars): void => {
  if (native !== undefined && w.length > 0 && w.constructor === g.constructor) native(w, g, m, v, s)
  else adamwLoop(w, g, m, v, s)
}

/**
 * The scalars of step t (from 1) of `c` with the learning rate, clip scale and decay given.
 * @category constructors
 */
export const scalarsOf = (c: { readonly beta1: number; readonly beta2: number; readonly eps: number }, t: number, lr: number, clip: number, decay: number): AdamwScalars => ({
  beta1: c.beta1,
  beta2: c.beta2,
  c1: 1 - c.beta1 ** t,
  c2: 1 - c.beta2 ** t,
  eps: c.eps,
  lr,
  clip,
  decay,
})
