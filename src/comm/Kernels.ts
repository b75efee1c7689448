/**
 * Kernels: the bulk copies and reductions every collective is made of, on any transport.
 *
 * Bulk copies and sums use the native CPU kernels when the addon is built (they are not capped
 * like V8's copies into and out of SharedArrayBuffers, see toolchain.md section 5), plain JS
 * otherwise. A reduction runs in one order (out = first part, then += each later part, in
 * group order), so every backend gets the same bits.
 */
import * as Cpu from "../native/Cpu.js"
import { activeDispatchKernels } from "../native/CpuDispatch.js"
import type * as DType from "../tensor/DType.js"
import { addInto, hasNative, nativeFrom, sumInto } from "../tensor/kernels/AddInto.js"

/**
 * Copies `src` into `dst` starting at element `at` (same dtype).
 * @category kernels
 */
export const copyInto = (dst: DType.Storage, at: number, src: DType.Storage): void => {
  if (src.length === 0) return
  if (src.length >= nativeFrom && hasNative()) Cpu.copy(dst.subarray(at, at + src.length), src)
  else dst.set(src, at)
}

/**
 * Copies rows `rows[0..]` of `src` (rows of `inner` elements) into `dst` from element `at` on,
 * in that order (a gather: the native dispatch kernel on float32, else a copy per row). The
 * caller checks the row numbers.
 * @category kernels
 */
export const gatherInto = (dst: DType.Storage, at: number, src: DType.Storage, rows: Int32Array, inner: number): void => {
  if (rows.length === 0 || inner === 0) return
  const k = src instanceof Float32Array && dst instanceof Float32Array ? activeDispatchKernels() : undefined
  if (k !== undefined) return k.permuteRows(src as Float32Array, inner, rows, (dst as Float32Array).subarray(at, at + rows.length * inner), inner, null, null, 0, null)
  for (let r = 0; r < rows.length; r++) {
    const from = (rows[r] as number) * inner
    if (!(from >= 0 && from + inner <= src.length)) throw new RangeError(`gather: row ${rows[r]} is outside the ${src.length / inner} rows of the source`)
    copyInto(dst, at + r * inner, src.subarray(from, from + inner))
  }
}

const maxInto = (out: DType.Storage, src: DType.Storage): void => {
  for (let i = 0; i < out.length; i++) out[i] = Math.max(out[i] as number, src[i] as number)
}

/**
 * The reduction of elements [from, from + out.length) over all parts, in group order, into
 * `out` (out = first part, then += or max= each later part).
 * @category kernels
 */
export const combine = (op: "sum" | "max", parts: ReadonlyArray<DType.Storage>, out: DType.Storage, from: number): DType.Storage => {
  const first = parts[0]
  const length = out.length
  if (first === undefined || length === 0) return out
  // Sums start from the first two parts in one pass (the bits of a copy and an add).
  const second = op === "sum" ? parts[1] : undefined
  if (second === undefined) copyInto(out, 0, first.subarray(from, from + length))
  else sumInto(out, first.subarray(from, from + length), second.subarray(from, from + length))
  for (let p = second === undefined ? 1 : 2; p < parts.length; p++) {
    const src = (parts[p] as DType.Storage).subarray(from, from + length)
    if (op === "sum") addInto(out, src)
    else maxInto(out, src)
  }
  return out
}
