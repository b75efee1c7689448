/**
 * DType and storage: the element types of tensors and the typed arrays that hold them.
 *
 * Storage is a plain typed array, row-major and contiguous, so native kernels read and write it
 * without copies. `shared: true` backs it by a SharedArrayBuffer, for ranks that share memory
 * across worker threads.
 */
import * as StorageRecycler from "./StorageRecycler.js"

/**
 * The element type of a tensor. float64 is the exact path for checks; float32 the fast one.
 * @category models
 */
export type DType = "float32" | "float64"

/**
 * The storage of a tensor of either dtype.
 * @category models
 */
export type Storage = Float32Array | Float64Array

/**
 * Bytes per element.
 * @category mapping
 */
export const bytesPer = (dtype: DType): number => (dtype === "float32" ? 4 : 8)

/**
 * Slab tiers: unshared storage of at most `upTo` bytes is carved from an ArrayBuffer of `bytes`
 * that many tensors share (a fresh ArrayBuffer each cost ~3 us at 4 KB and ~7 us at 16-64 KB
 * through Buffer.allocUnsafeSlow, measured in training, where ~1,250 of 4-64 KB were made per
 * step of the default model at hidden 256). A slab lives while any of its views does, so a
 * long-lived view pins at most its tier's slab: 64 KB / 256 KB. 1 MB slabs measured 5-13% slower
 * than 256 KB on the default job's threads backend (8 ranks on 2 workers, 2026-12-01).
 */
interface Tier {
  readonly upTo: number
  readonly bytes: number
  slab: ArrayBuffer | undefined
  used: number
}

const tiers: ReadonlyArray<Tier> = [
  { upTo: 4096, bytes: 65536, slab: undefined, used: 65536 },
  { upTo: 65536, bytes: 1 << 18, slab: undefined, used: 1 << 18 },
]

/** The largest storage, in bytes, that comes from a slab. */
const slabUpTo = 65536

/** Offsets within a slab are multiples of this (a cache line: the SIMD kernels' loads). */
const slabAlign = 64

/**
 * A view of `size` elements from the tier's slab, uninitialised. Slabs come from
 * Buffer.allocUnsafeSlow (malloc, reusing freed memory: ~24 us for 1 MB) rather than
 * `new ArrayBuffer` (calloc: ~300 us for 1 MB, where glibc maps fresh memory and the kernel
 * zeroes a 2 MB huge page under GLIBC_TUNABLES=glibc.malloc.hugetlb=1, which pleat sets).
 */
const carve = (dtype: DType, size: number, bytes: number): Storage => {
  const tier = (bytes <= (tiers[0] as Tier).upTo ? tiers[0] : tiers[1]) as Tier
  if (tier.slab === undefined || tier.used + bytes > tier.bytes) {
    tier.slab = Buffer.allocUnsafeSlow(tier.bytes).buffer as ArrayBuffer
    tier.used = 0
  }
  const at = tier.used
  tier.used += Math.ceil(Math.max(bytes, 1) / slabAlign) * slabAlign
  return dtype === "float32" ? new Float32Array(tier.slab, at, size) : new Float64Array(tier.slab, at, size)
}

/**
 * New zeroed storage of `size` elements. Unshared storage of up to 64 KB is a view of a slab, a
 * larger ArrayBuffer that many tensors share (each byte handed out once, zeroed here; the slab is
 * freed with its last view): one ArrayBuffer per tensor made
 * allocation and garbage collection most of a small model's step. Larger unshared storage is
 * the start of a buffer of its own, rounded up to a size class (StorageRecycler, which may hand
 * out a buffer given back). Code that needs the bytes of a storage uses its byteOffset and
 * byteLength, never its whole buffer.
 * @category constructors
 */
export const allocate = (dtype: DType, size: number, shared = false): Storage => {
  const bytes = size * bytesPer(dtype)
  if (!shared && bytes <= slabUpTo) return carve(dtype, size, bytes).fill(0)
  if (!shared) return StorageRecycler.allocate(dtype, size, true)
  const buffer = new SharedArrayBuffer(bytes)
  return dtype === "float32" ? new Float32Array(buffer) : new Float64Array(buffer)
}

/**
 * The dtype of some storage.
 * @category mapping
 */
export const of = (storage: Storage): DType => (storage instanceof Float32Array ? "float32" : "float64")

/**
 * PLEAT_POISON_UNINITIALIZED=1 (the test suites set it) fills uninitialised storage with NaN, so
 * an op that leaves part of its output unwritten shows in its results instead of reading
 * whatever the allocator last held (often zeros, which would hide the bug).
 */
const poison = process.env.PLEAT_POISON_UNINITIALIZED === "1"

/**
 * New storage whose every element the caller overwrites before reading (gather outputs, copies,
 * the outputs of kernels that write every element): skips zeroing, which for large buffers costs
 * as much as the copy itself. Never shared.
 * @category constructors
 */
export const allocateUninitialized = (dtype: DType, size: number): Storage => {
  const bytes = size * bytesPer(dtype)
  if (bytes <= slabUpTo) return poison ? carve(dtype, size, bytes).fill(Number.NaN) : carve(dtype, size, bytes)
  // A buffer of its own (StorageRecycler: reused or new), uninitialised.
  const out = StorageRecycler.allocate(dtype, size, false)
  return poison ? out.fill(Number.NaN) : out
}

/**
 * A copy of `storage` in new storage of its own (small ones from a slab, as `allocate`): what a
 * typed array's slice() gives, without an ArrayBuffer per copy. Never for a buffer that is then
 * transferred whole (postMessage), which needs slice().
 * @category constructors
 */
export const copyOf = (storage: Storage): Storage => {
  const out = allocateUninitialized(of(storage), storage.length)
  out.set(storage)
  return out
}
