/**
 * AddInto: out[i] = out[i] + src[i], the one accumulation of gradients and sums (the tape's
 * gradient accumulation, a chunk's leaf gradients into its shards, the collectives' sums), and
 * `sumOf`, the same sum into new storage.
 *
 * Long runs take the native axpy with a = 1 when the addon is built (float64: the same
 * operation as the loop; float32: one correctly rounded add either way, so the same bits);
 * short runs, where a native call costs more than the loop, and builds without the addon take
 * the loop.
 */
import * as Cpu from "../../native/Cpu.js"
import { BinaryOp, BroadcastKind, elementwiseKernels } from "../../native/CpuElementwise.js"
import * as DType from "../DType.js"

/**
 * Below this many elements a JS loop beats the cost of a native call (copies and sums alike).
 * @category configuration
 */
export const nativeFrom = 2048

let native: boolean | undefined

/**
 * Whether the CPU addon loaded (checked once).
 * @category guards
 */
export const hasNative = (): boolean => {
  if (native === undefined) {
    try {
      Cpu.activeIsa()
      native = true
    } catch {
      native = false
    }
  }
  return native
}

/**
 * out += src element-wise (same dtype and length).
 * @category kernels
 */
export const addInto = (out: DType.Storage, src: DType.Storage): void => {
  if (out.length >= nativeFrom && hasNative()) {
    if (out instanceof Float32Array) Cpu.axpy(1, src as Float32Array, out)
    else Cpu.axpy(1, src as Float64Array, out)
    return
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (src[i] as number)
}

/**
 * a + b element-wise into new storage (same dtype and length): the bits of copying a and adding
 * b into the copy, in one pass (the native add where it pays, the loop otherwise).
 * @category kernels
 */
export const sumOf = (a: DType.Storage, b: DType.Storage): DType.Storage => sumInto(DType.allocateUninitialized(DType.of(a), a.length), a, b)

/**
 * out = a + b element-wise (same dtype and length; out may be neither's storage), in one pass:
 * the bits of copying a into out and adding b.
 * @category kernels
 */
export const sumInto = (out: DType.Storage, a: DType.Storage, b: DType.Storage): DType.Storage => {
  const kernels = a.length >= nativeFrom ? elementwiseKernels() : undefined
  if (kernels !== undefined) {
    kernels.binary(BinaryOp.add, BroadcastKind.same, a, b, out, 0)
    return out
  }
  for (let i = 0; i < out.length; i++) out[i] = (a[i] as number) + (b[i] as number)
  return out
}
