/**
 * Slabs: small unshared storage (at most 64 KB) carved from larger ArrayBuffers that many
 * tensors share, and slabs handed out again once every view carved from them has been handed
 * back.
 *
 * Why slabs: a fresh ArrayBuffer costs ~3 us at 4 KB and ~7 us at 16-64 KB through
 * Buffer.allocUnsafeSlow, measured in training, where ~1,250 of 4-64 KB were made per step of
 * the default model at hidden 256. A slab lives while any of its views does, so a long-lived view
 * pins at most its tier's slab: 64 KB / 256 KB. 1 MB slabs measured 5-13% slower than 256 KB on
 * the default job's threads backend (8 ranks on 2 workers, 2026-12-01).
 *
 * Why reuse: V8 counts every new ArrayBuffer's bytes as external memory and runs a collection
 * for every ~16-64 MB of them. The default model at hidden 1024 carves ~58 MB of 256 KB slabs a
 * step ([16, 1024] activations and gradients): one mark-compact and ~6 scavenges a step, a
 * fifth of the step (bench/README.md, pytorch suite). A slab whose views have all come back
 * (`handBack`, through StorageRecycler.recycle) and that is full serves the next carves instead
 * of a new buffer. A view handed back only counts toward its slab; a slab with a view that never
 * comes back is left to the collector as before.
 *
 * Checking mode (StorageRecycler's: the test suites): a slab whose views have all come back is
 * detached (its memory moves to a new ArrayBuffer by a transfer), so every view of it reads
 * length 0 and a use after hand-back fails loudly.
 */
import * as MemoryHeadroom from "./MemoryHeadroom.js"

/** A view carved and not handed back: its length, and the caller's mark (StorageRecycler's). */
interface Carved {
  readonly bytes: number
  readonly mark: number
}

/** What the pool knows of a slab it made. */
interface Slab {
  /** Still the tier's current slab (more views may be carved). */
  open: boolean
  /** The views out, by byte offset (a plain Map: no weak entry per view for the collector to trace). */
  readonly out: Map<number, Carved>
}

interface Tier {
  readonly upTo: number
  readonly bytes: number
  slab: ArrayBuffer | undefined
  record: Slab | undefined
  used: number
  /** Slabs whose views all came back, ready to carve again (newest last). */
  readonly free: Array<ArrayBuffer>
}

const tiers: ReadonlyArray<Tier> = [
  { upTo: 4096, bytes: 65536, slab: undefined, record: undefined, used: 65536, free: [] },
  { upTo: 65536, bytes: 1 << 18, slab: undefined, record: undefined, used: 1 << 18, free: [] },
]

/**
 * The largest storage, in bytes, that comes from a slab.
 * @category configuration
 */
export const upTo = 65536

/**
 * The most bytes of free slabs a tier keeps (per thread). A micro-batch's activations all come back
 * at once, after its backward: at hidden 1024 a cap of 64 slabs (16 MB) dropped ~70 of them a step,
 * which the next micro-batches then made anew.
 */
const maxFreeBytes = 64 * 2 ** 20

/** Offsets within a slab are multiples of this (a cache line: the SIMD kernels' loads). */
const align = 64

const records = new WeakMap<ArrayBuffer, Slab>()
let reusedSlabs = 0

/** Closes the tier's current slab; it goes back to the free list at once if nothing of it is out. */
const close = (tier: Tier): void => {
  const slab = tier.slab
  const record = tier.record
  if (slab === undefined || record === undefined) return
  record.open = false
  if (record.out.size === 0) release(tier, slab)
}

const release = (tier: Tier, slab: ArrayBuffer): void => {
  records.delete(slab)
  if (tier.slab === slab) {
    tier.slab = undefined
    tier.record = undefined
  }
  if ((tier.free.length + 1) * tier.bytes > maxFreeBytes) return
  tier.free.push(checkingMode ? structuredClone(slab, { transfer: [slab] }) : slab)
}

let checkingMode = false
let enabled = true

/**
 * Sets how hand-backs behave (StorageRecycler calls this once: its switches).
 * @category configuration
 */
export const configure = (options: { readonly enabled: boolean; readonly checking: boolean }): void => {
  enabled = options.enabled
  checkingMode = options.checking
}

const tierOf = (bytes: number): Tier => (bytes <= (tiers[0] as Tier).upTo ? tiers[0] : tiers[1]) as Tier

/**
 * A view of `size` elements (`bytes` of them, at most `upTo`) from the tier's slab, uninitialised.
 * Slabs are reused once all their views came back, else made by Buffer.allocUnsafeSlow (malloc,
 * reusing freed memory: ~24 us for 1 MB) rather than `new ArrayBuffer` (calloc: ~300 us for 1 MB,
 * where glibc maps fresh memory and the kernel zeroes a 2 MB huge page under
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1, which pleat sets). `mark` is kept with the view until it
 * is handed back (`markOf`).
 * @category constructors
 */
export const carve = (float32: boolean, size: number, bytes: number, mark: number): Float32Array | Float64Array => {
  const tier = tierOf(bytes)
  if (tier.slab === undefined || tier.used + bytes > tier.bytes) {
    close(tier)
    const reused = tier.free.pop()
    if (reused !== undefined) reusedSlabs += 1
    else MemoryHeadroom.admit(tier.bytes)
    tier.slab = reused ?? (Buffer.allocUnsafeSlow(tier.bytes).buffer as ArrayBuffer)
    tier.used = 0
    tier.record = { open: true, out: new Map() }
    records.set(tier.slab, tier.record)
  }
  const at = tier.used
  tier.used += Math.ceil(Math.max(bytes, 1) / align) * align
  ;(tier.record as Slab).out.set(at, { bytes, mark })
  return float32 ? new Float32Array(tier.slab, at, size) : new Float64Array(tier.slab, at, size)
}

/** The record of the carve `view` is, if it is one out now (the same offset and length). */
const carvedAs = (view: ArrayBufferView): { readonly record: Slab; readonly carved: Carved } | undefined => {
  const record = view.buffer instanceof ArrayBuffer ? records.get(view.buffer) : undefined
  const carved = record?.out.get(view.byteOffset)
  return record === undefined || carved === undefined || carved.bytes !== view.byteLength ? undefined : { record, carved }
}

/**
 * The mark `view` was carved with, if it is a view this pool carved (that very offset and length)
 * and that has not been handed back.
 * @category getters
 */
export const markOf = (view: ArrayBufferView): number | undefined => carvedAs(view)?.carved.mark

/**
 * Gives a carved view that is out now the mark `update` makes of its own
 * (StorageRecycler.markFresh); nothing when it is not one.
 * @category mutations
 */
export const remark = (view: ArrayBufferView, update: (mark: number) => number): void => {
  const found = carvedAs(view)
  if (found !== undefined) found.record.out.set(view.byteOffset, { bytes: found.carved.bytes, mark: update(found.carved.mark) })
}

/**
 * Hands back a carved view: the caller asserts nothing reads or writes it afterwards. Its slab
 * is carved again once all its views are back and it is full. Returns whether it was taken
 * (only a view this pool carved and not yet handed back, with recycling on).
 * @category mutations
 */
export const handBack = (view: ArrayBufferView): boolean => {
  const found = enabled ? carvedAs(view) : undefined
  if (found === undefined) return false
  const { record } = found
  record.out.delete(view.byteOffset)
  if (!record.open && record.out.size === 0) release(tierOf(view.byteLength), view.buffer as ArrayBuffer)
  return true
}

/**
 * Slabs carved again after their views all came back (on this thread), for tests and the bench.
 * @category getters
 */
export const reused = (): number => reusedSlabs

/**
 * Drops the free slabs (the collector frees them).
 * @category mutations
 */
export const clear = (): void => {
  for (const tier of tiers) tier.free.length = 0
}
