/**
 * DType and storage: the element types of tensors and the typed arrays that hold them.
 *
 * Storage is a plain typed array, row-major and contiguous, so native kernels read and write it
 * without copies. `shared: true` backs it by a SharedArrayBuffer, for ranks that share memory
 * across worker threads.
 */
import * as Slabs from "./Slabs.js"
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

/** A view of `size` elements from a slab (Slabs), uninitialised, marked as made now (StorageRecycler). */
const carve = (dtype: DType, size: number, bytes: number): Storage => Slabs.carve(dtype === "float32", size, bytes, StorageRecycler.nextMark())

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
  if (!shared && bytes <= Slabs.upTo) return carve(dtype, size, bytes).fill(0)
  if (!shared) return StorageRecycler.allocate(dtype, size, true)
  const buffer = new SharedArrayBuffer(bytes)
  return dtype === "float32" ? new Float32Array(buffer) : new Float64Array(buffer)
}

/**
 * Whether two storages share bytes (small storages share a slab without sharing bytes).
 * @category guards
 */
export const overlaps = (a: Storage, b: Storage): boolean => a.buffer === b.buffer && rangesMeet(a.byteOffset, a.byteLength, b.byteOffset, b.byteLength)

/**
 * Whether two storages known to view one buffer share bytes: `overlaps` without comparing their
 * buffers (`.buffer` is a call into V8's C++ runtime), for lists kept per buffer.
 * @category guards
 */
export const overlapsInBuffer = (a: Storage, b: Storage): boolean => rangesMeet(a.byteOffset, a.byteLength, b.byteOffset, b.byteLength)

/** Whether the byte ranges [aOffset, +aLength) and [bOffset, +bLength) of one buffer meet. */
const rangesMeet = (aOffset: number, aLength: number, bOffset: number, bLength: number): boolean => aOffset < bOffset + bLength && bOffset < aOffset + aLength

/**
 * Some storages' byte ranges by buffer (offset, length pairs), to ask of many storages whether
 * they share bytes with any of these: each storage's `.buffer` (a call into V8's C++ runtime) is
 * read once, not once a pair (ActivationRelease asked ~70,000 pairs a step of the default job).
 * @category models
 */
export type ByteIndex = ReadonlyMap<ArrayBufferLike, ReadonlyArray<number>>

/**
 * The ByteIndex of `storages`.
 * @category constructors
 */
export const byteIndex = (storages: Iterable<Storage>): ByteIndex => {
  const index = new Map<ArrayBufferLike, Array<number>>()
  for (const s of storages) {
    const ranges = index.get(s.buffer)
    if (ranges === undefined) index.set(s.buffer, [s.byteOffset, s.byteLength])
    else ranges.push(s.byteOffset, s.byteLength)
  }
  return index
}

/**
 * Whether `storage` shares bytes with any storage of `index` (as `overlaps` with each).
 * @category guards
 */
export const overlapsAny = (index: ByteIndex, storage: Storage): boolean => {
  const ranges = index.get(storage.buffer)
  if (ranges === undefined) return false
  const offset = storage.byteOffset
  const length = storage.byteLength
  for (let i = 0; i < ranges.length; i += 2) if (rangesMeet(ranges[i] as number, ranges[i + 1] as number, offset, length)) return true
  return false
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
  if (bytes <= Slabs.upTo) return poison ? carve(dtype, size, bytes).fill(Number.NaN) : carve(dtype, size, bytes)
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
