/**
 * NormalStream: the deterministic normal values parameters start from. Element i of the stream
 * of a seed depends only on i (mulberry32 + Box-Muller: elements 2p and 2p + 1 share the uniforms
 * k = 2p + 1 and 2p + 2), so a rank computes only the slice it holds and every slice of every
 * mapping has the values of the whole.
 *
 * `normalsInto` is the definition (V8's Math.log, Math.cos and Math.sin). On float32 storage
 * `fill` runs the native kernel (kernels/normals.h: the C library's functions, on the pool,
 * ~30x faster: a realistic MoE model's 38M parameters took 6 s), which leaves undecided every
 * element whose double could round to another float32 under the definition's functions; those
 * are written by `normalsInto`, so the result is the definition's, bit for bit.
 */
import * as CpuOptional from "../native/CpuOptional.js"
import type * as DType from "./DType.js"

/** The mulberry32 step constant: the stream's k-th state is seed + k * STEP (mod 2^32). */
const STEP = 0x6d2b79f5

/**
 * The k-th uniform (k >= 1) of the mulberry32 stream from `seed`, in (0, 1).
 * @category kernels
 */
export const uniformAt = (seed: number, k: number): number => {
  let t = (seed + Math.imul(k, STEP)) >>> 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296
}

/**
 * Elements [first, first + count) of the normal stream from `seed`, times std, written to
 * out[at..]: the definition.
 * @category kernels
 */
export const normalsInto = (seed: number, first: number, count: number, std: number, out: DType.Storage, at: number): void => {
  const end = first + count
  let i = first
  while (i < end) {
    const pair = Math.floor(i / 2)
    const r = Math.sqrt(-2 * Math.log(uniformAt(seed, 2 * pair + 1)))
    const a = 2 * Math.PI * uniformAt(seed, 2 * pair + 2)
    if (i % 2 === 1) out[at + i - first] = r * Math.sin(a) * std
    else {
      out[at + i - first] = r * Math.cos(a) * std
      if (i + 1 < end) out[at + i + 1 - first] = r * Math.sin(a) * std
    }
    i = 2 * pair + 2
  }
}

const kernel = CpuOptional.normalsKernel()

/** The relative margin (2^-44) under which the native kernel leaves an element to the definition. */
const marginLog2 = 44

/**
 * `normalsInto`'s values, through the native kernel where `out` is float32 and the addon has it
 * (`margin` below 44 only in tests, to leave more elements to the definition).
 * @category kernels
 */
export const fill = (seed: number, first: number, count: number, std: number, out: DType.Storage, at: number, margin: number = marginLog2): void => {
  if (kernel === undefined || !(out instanceof Float32Array) || count === 0) return normalsInto(seed, first, count, std, out, at)
  for (const j of kernel(seed, first, count, std, out.subarray(at, at + count), margin)) normalsInto(seed, first + j, 1, std, out, at + j)
}

/**
 * Whether `fill` runs the native kernel on float32 storage.
 * @category guards
 */
export const native = (): boolean => kernel !== undefined
