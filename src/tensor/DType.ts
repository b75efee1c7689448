/**
 * DType and storage: the element types of tensors and the typed arrays that hold them.
 *
 * Storage is a plain typed array, row-major and contiguous, so native kernels read and write it
 * without copies. `shared: true` backs it by a SharedArrayBuffer, for ranks that share memory
 * across worker threads.
 */

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

/** Storage of at most this many bytes is carved from a slab (a fresh ArrayBuffer each costs ~3 us). */
const slabFrom = 4096

/** The slab's size: small tensors share one ArrayBuffer of this many bytes. */
const slabBytes = 65536

/** Offsets within a slab are multiples of this (a cache line: the SIMD kernels' loads). */
const slabAlign = 64

let slab: ArrayBuffer | undefined
let slabUsed = slabBytes

/**
 * New zeroed storage of `size` elements. Small unshared storage is a view of a slab, a larger
 * ArrayBuffer that many small tensors share (never reused: a slab's bytes start zeroed and each
 * is handed out once; the slab is freed with its last view): one ArrayBuffer per tensor made
 * allocation and garbage collection most of a small model's step. Code that needs the bytes of
 * a storage uses its byteOffset and byteLength, never its whole buffer.
 * @category constructors
 */
export const allocate = (dtype: DType, size: number, shared = false): Storage => {
  const bytes = size * bytesPer(dtype)
  if (!shared && bytes <= slabFrom) {
    if (slab === undefined || slabUsed + bytes > slabBytes) {
      slab = new ArrayBuffer(slabBytes)
      slabUsed = 0
    }
    const at = slabUsed
    slabUsed += Math.ceil(Math.max(bytes, 1) / slabAlign) * slabAlign
    return dtype === "float32" ? new Float32Array(slab, at, size) : new Float64Array(slab, at, size)
  }
  const buffer = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes)
  return dtype === "float32" ? new Float32Array(buffer) : new Float64Array(buffer)
}

/**
 * The dtype of some storage.
 * @category mapping
 */
export const of = (storage: Storage): DType => (storage instanceof Float32Array ? "float32" : "float64")

/** From this many bytes, `allocateUninitialized` skips the zeroing pass. */
const uninitializedFrom = 16384

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
  // Small buffers: zeroing costs nothing next to the allocation, and a plain typed array is
  // the cheaper object.
  if (bytes < uninitializedFrom) return poison ? allocate(dtype, size).fill(Number.NaN) : allocate(dtype, size)
  // Small buffers come from Node's pool as views with offsets; the Slow variant is a whole
  // ArrayBuffer of its own, uninitialised.
  const buffer = Buffer.allocUnsafeSlow(bytes).buffer
  const out = dtype === "float32" ? new Float32Array(buffer, 0, size) : new Float64Array(buffer, 0, size)
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
