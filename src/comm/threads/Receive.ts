/**
 * Receive: one member's output of a collective, computed by that member from every member's
 * contribution, read in place from shared memory.
 *
 * Collective.compute makes every member's output in one place; here each receiver makes only
 * its own, in its own thread, so the members of a group work in parallel. The arithmetic is the
 * same, in the same order (out = first part, then += each later part in group order), so the
 * results are bit for bit those of the local backend. Bulk copies and sums use the native CPU
 * kernels when the addon is built (they are not capped like V8's copies into and out of
 * SharedArrayBuffers, see toolchain.md section 5), plain JS otherwise.
 */
import type * as Collective from "../Collective.js"
import * as DType from "../../tensor/DType.js"
import * as Tensor from "../../tensor/Tensor.js"
import * as Cpu from "../../native/Cpu.js"

// Below this many elements a JS loop beats the cost of a native call.
const nativeFrom = 2048

let native: boolean | undefined

const hasNative = (): boolean => {
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
 * Copies `src` into `dst` starting at element `at` (same dtype).
 * @category kernels
 */
export const copyInto = (dst: DType.Storage, at: number, src: DType.Storage): void => {
  if (src.length === 0) return
  if (src.length >= nativeFrom && hasNative()) Cpu.copy(dst.subarray(at, at + src.length), src)
  else dst.set(src, at)
}

// out[i] = out[i] + src[i]: the same rounding as Collective's JS loop (float64: exact same
// operation; float32: one correctly rounded add either way).
const addInto = (out: DType.Storage, src: DType.Storage): void => {
  if (out.length >= nativeFrom && hasNative()) {
    if (out instanceof Float32Array) Cpu.axpy(1, src as Float32Array, out)
    else Cpu.axpy(1, src as Float64Array, out)
    return
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (src[i] as number)
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
  copyInto(out, 0, first.subarray(from, from + length))
  for (let p = 1; p < parts.length; p++) {
    const src = (parts[p] as DType.Storage).subarray(from, from + length)
    if (op === "sum") addInto(out, src)
    else maxInto(out, src)
  }
  return out
}

const rowSize = (shape: ReadonlyArray<number>) => Tensor.sizeOf(shape.slice(1))
const rows = (shape: ReadonlyArray<number>) => shape[0] ?? 1

/**
 * The output of group-local member `j`, from the contributions in group-local order (already
 * checked to agree, receive buffer sizes included). Equal to `Collective.compute(cs, false)[j]`;
 * written into `out` (member j's receive buffer) where Collective.compute would use it.
 * @category mapping
 */
export const outputFor = (cs: ReadonlyArray<Collective.Contribution>, j: number, out?: DType.Storage): Collective.Output => {
  const first = cs[0] as Collective.Contribution
  const dtype = first.dtype
  const data = cs.map((c) => c.data)
  const target = (length: number) => out ?? DType.allocate(dtype, length)
  switch (first.op) {
    case "barrier":
      return { data: target(0), shape: [0] }
    case "allReduce":
      return { data: combine(first.reduce ?? "sum", data, target(first.data.length), 0), shape: first.shape }
    case "broadcast": {
      const root = cs[first.root ?? 0] as Collective.Contribution
      const result = target(root.data.length)
      copyInto(result, 0, root.data)
      return { data: result, shape: root.shape }
    }
    case "allGather":
    case "allGatherV": {
      const splits = cs.map((c) => rows(c.shape))
      const total = splits.reduce((a, b) => a + b, 0)
      const result = target(total * rowSize(first.shape))
      let offset = 0
      for (const c of cs) {
        copyInto(result, offset, c.data)
        offset += c.data.length
      }
      return { data: result, shape: [total, ...first.shape.slice(1)], splits }
    }
    case "reduceScatter":
    case "reduceScatterV": {
      const inner = rowSize(first.shape)
      const counts = first.counts ?? cs.map(() => rows(first.shape) / cs.length)
      const start = counts.slice(0, j).reduce((a, b) => a + b, 0)
      const count = counts[j] as number
      // Like Collective.compute, reduceScatter ignores a receive buffer.
      return { data: combine(first.reduce ?? "sum", data, DType.allocate(dtype, count * inner), start * inner), shape: [count, ...first.shape.slice(1)] }
    }
    case "allToAllV": {
      const inner = rowSize(first.shape)
      const splits = cs.map((c) => (c.sendSplits ?? [])[j] as number)
      const total = splits.reduce((a, b) => a + b, 0)
      const result = target(total * inner)
      let offset = 0
      cs.forEach((c, i) => {
        // Member i's block for member j starts after its blocks for members 0..j-1.
        const begin = (c.sendSplits ?? []).slice(0, j).reduce((a, b) => a + b, 0) * inner
        const len = (splits[i] as number) * inner
        copyInto(result, offset, c.data.subarray(begin, begin + len))
        offset += len
      })
      return { data: result, shape: [total, ...first.shape.slice(1)], splits }
    }
  }
}
