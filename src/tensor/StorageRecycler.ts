/**
 * StorageRecycler: storage handed back by code that knows it is dead, and handed out again to a
 * later request, instead of leaving it to V8: buffers of their own (past 64 KB) go to a pool by
 * size class; views of slabs (64 KB and less) go back to their slab (Slabs.ts), which is carved
 * again once all its views are back.
 *
 * Why: a fresh ArrayBuffer is costly here beyond its malloc. V8 counts new array buffers' bytes
 * as external memory: past 16 MiB of young ones it runs a scavenge, and every ~64 MB since the
 * last one a mark-compact (incremental, on the main thread, since pleat runs without concurrent
 * marking); a buffer alive across two scavenges is freed only by a mark-compact, so memory is
 * reclaimed late and new buffers fault in fresh pages. The MoE dispatcher at EP 2 made 48 MiB of
 * results a step (2 ranks): ~3 scavenges a step, a quarter of the step in V8's collector and
 * allocation (bench/README.md, moe suite); the default model at hidden 1024 ~80 MB of 64 KB
 * activations and gradients: a mark-compact and ~6 scavenges a step (pytorch suite).
 *
 * Safety: only code that made a storage and knows every reader of it hands it back (the MoE
 * dispatchers, off the tape: the rows their experts ran on and the experts' output,
 * moe/Dispatcher.ts recycleExpertRows; backward passes: the gradients their rules and sums
 * consumed, BackwardPass.ts; a chunk's forward activations once its backward has run,
 * ActivationRelease.ts; on a transport of private storage, the data-parallel gradient buckets and
 * their sums, RankParams.ts, and a chunked exchange's staging, ChunkedLowering.ts). The buffer
 * itself is kept and handed out again, so a reader that broke that promise would see the next
 * owner's values. The test suites therefore run in checking mode
 * (PLEAT_POISON_UNINITIALIZED=1, which they set, or PLEAT_RECYCLE=check): there a recycled
 * buffer (a slab once all its views are back) is detached (its memory moves to a new ArrayBuffer
 * by a transfer, no copy), so every typed array that still views it reads length 0: a use after
 * recycling fails loudly (native kernels reject the length, JavaScript reads undefined, NaN in
 * arithmetic). Checking is not the default because the new ArrayBuffer counts as freshly
 * allocated to V8: measured, 2.1 scavenges a step of the EP 2 dispatcher against 1.1 when the
 * buffer is kept (2.9 without recycling). Only the very storage this module or a slab handed out
 * is taken back; SharedArrayBuffers, parts of a storage and buffers made elsewhere are left to
 * the collector. The pool keeps at most `capBytes`; past it, recycling declines (the storage is
 * freed by V8 as before). PLEAT_RECYCLE=0 turns recycling off (every `recycle` declines).
 *
 * Two marks tell storage apart by when it was made: `freshWithin` (made inside a backward rule
 * or a pass's sums: the only storage a backward pass hands back, never a forward activation or
 * a collective's result, unless a private collective's: `markFresh`) and `serial` / `madeSince` (made after a point: the only storage a
 * forward's release takes, never a weight or a cache). Storage that something keeps past its
 * maker's knowledge (a leaf's `.grad` kept as given, a deferred weight-gradient product's
 * operands) is marked with `keep`; offered back while kept, it is taken when the last keeper
 * calls `letGo`.
 */
import { constants } from "node:buffer"
import * as ConfigError from "../errors/ConfigError.js"
import * as DType from "./DType.js"
import * as MemoryHeadroom from "./MemoryHeadroom.js"
import * as Slabs from "./Slabs.js"
import type { Tensor } from "./Tensor.js"

/**
 * The smallest storage, in bytes, taken back (smaller ones come from DType's slabs or are cheap).
 * @category configuration
 */
export const minBytes = Slabs.upTo + 1

/**
 * The most bytes the pool keeps (per thread: each worker thread has its own pool). A rank of
 * the realistic MoE shape on ep 2 hands back more than 512 MiB it takes again: with that cap
 * (and `reach` 1.25) each worker still made ~500 MB of new buffers a step, and V8 ran 2-4
 * external-memory mark-compacts and ~20 scavenges a step on each (~50 ms), against one
 * scavenge on one rank.
 * @category configuration
 */
export const capBytes = 1024 * 2 ** 20

const enabled = process.env.PLEAT_RECYCLE !== "0"
const checking = process.env.PLEAT_RECYCLE === "check" || process.env.PLEAT_POISON_UNINITIALIZED === "1"
Slabs.configure({ enabled, checking })

/** Storage something keeps beyond what made them (`keep`), by buffer: not taken back while kept. */
const kept = new WeakMap<ArrayBufferLike, Array<DType.Storage>>()
/** Storage offered back while kept: taken when its last keeper lets go (`letGo`). */
const waiting = new WeakSet<DType.Storage>()
let collecting = 0
/** Allocations so far: each storage's mark is its serial times 2, plus 1 when made in `freshWithin`. */
let made = 0

/** Free buffers by byte length (a size class); newest last (reused first: warmest in cache). */
const free = new Map<number, Array<ArrayBuffer>>()
/** The storage this module handed out over each of its buffers: only that storage gives it back. */
const owners = new WeakMap<ArrayBuffer, { readonly storage: DType.Storage; readonly mark: number }>()
let pooledBytes = 0
let recycledCount = 0
let reusedCount = 0

/**
 * The size class of a request of `bytes` (at least `minBytes`): rounded up to a sixteenth of
 * its power of two, so requests that vary a little from step to step (the rows an expert
 * receives follow the routing) share buffers, for at most 1/16 more memory.
 * @category mapping
 */
export const classOf = (bytes: number): number => {
  const step = 2 ** Math.max(0, Math.floor(Math.log2(bytes)) - 4)
  return Math.ceil(bytes / step) * step
}

/**
 * Classes up to this factor above a request's own may serve it (the smallest pooled one that
 * does). Where experts sit on other ranks, the rows a rank's experts receive follow the routing
 * from step to step (0 to every token of the EP group), and so do the sizes of their
 * activations and gradients: at 1.25 most of them missed a pool full of the last step's sizes.
 * Measured on the realistic shape at ep 2 (2 ranks, threads), with `capBytes` 512 MiB -> 1 GiB:
 * steps ~4% shorter in interleaved runs, peak RSS 5.5 -> 5.7 GB.
 * @category configuration
 */
export const reach = 2

/**
 * A request that finds no pooled buffer while the pool holds some (storage is being handed
 * back: training steps run) gets a buffer of the class of this many times its bytes, so that the
 * same request a little larger at a later step is served by it. The rows a rank's experts receive
 * follow the routing and grow as well as shrink; a rank of the realistic MoE shape on ep 2
 * (threads) made ~180-220 MB of new buffers of 1 MiB or more a step (malloc, counted by a
 * uprobe), mostly requests just above every pooled one, and the kernel clearing their fresh pages
 * took 4-9% of the job's CPU time. With this headroom: ~50-90 MB, and 2-3%. Before the first
 * hand-back (parameters, optimizer state) a request gets its own class.
 * @category configuration
 */
export const headroom = 1.25

/** A pooled buffer of the class of `bytes` or of one up to `reach` above it. */
const take = (bytes: number): ArrayBuffer | undefined => {
  // Nothing handed back yet (a training step hands back nothing): no lookups.
  if (pooledBytes === 0) return undefined
  const own = classOf(bytes)
  for (let size = own; size <= own * reach; size = classOf(size + 1)) {
    const buffer = free.get(size)?.pop()
    if (buffer === undefined) continue
    pooledBytes -= size
    reusedCount += 1
    return buffer
  }
  return undefined
}

/**
 * The length of a new pooled buffer for a request of `bytes`: its size class, or the class of
 * `headroom` times it when `withHeadroom`, but never past `cap` (Node's largest Buffer,
 * buffer.constants.MAX_LENGTH, 4 GiB in Node 20) for a request that fits under it: a 3.5 GiB
 * block of logits, made at step 1 in a class of its own, asked for 4.375 GiB at step 2 and
 * failed there with Node's "The value of "size" is out of range".
 * @category getters
 */
export const lengthFor = (bytes: number, withHeadroom: boolean, cap: number = constants.MAX_LENGTH): number =>
  Math.max(bytes, Math.min(classOf(withHeadroom ? Math.ceil(bytes * headroom) : bytes), cap))

const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(1)} GiB`

/**
 * A request larger than one Buffer holds (Node's "The value of "size" is out of range" until now):
 * a user's configuration that cannot run (MemoryFloor refuses the ones it can size before any
 * work: parameter shards, logits), so it says what to change.
 */
const tooLarge = (bytes: number): ConfigError.ConfigError =>
  ConfigError.make(
    "tensor",
    bytes,
    `bytes (${gib(bytes)}: one layer's block of a micro-batch's tokens on a rank) are more than one buffer holds (${gib(constants.MAX_LENGTH)})`,
    "fewer tokens a micro-batch on each rank (a shorter --seq, a smaller --micro-batch, a larger --cp) or narrower blocks (a larger --tp, --ep or --etp)",
  )

/**
 * Unshared storage of `size` elements in a buffer of its own, zeroed or uninitialised (the
 * previous owner's values): from the pool when it holds a buffer of the request's size class
 * or of one up to `reach` times larger, else new (of the class, or of `headroom` times the
 * request's while the pool holds any: `recycle` can take it back). Under `minBytes`, or with
 * recycling off, a new buffer of exactly the request.
 * @category constructors
 */
export const allocate = (dtype: DType.DType, size: number, zeroed: boolean): DType.Storage => {
  const bytes = size * (dtype === "float32" ? 4 : 8)
  const recyclable = enabled && bytes >= minBytes
  const recycled = recyclable ? take(bytes) : undefined
  const length = recyclable ? lengthFor(bytes, recycled === undefined && pooledBytes > 0) : bytes
  if (recycled === undefined && !zeroed && length > constants.MAX_LENGTH) throw tooLarge(bytes)
  if (recycled === undefined) MemoryHeadroom.admit(length)
  const buffer = recycled ?? (zeroed ? new ArrayBuffer(length) : (Buffer.allocUnsafeSlow(length).buffer as ArrayBuffer))
  const storage = dtype === "float32" ? new Float32Array(buffer, 0, size) : new Float64Array(buffer, 0, size)
  if (recycled !== undefined && zeroed) storage.fill(0)
  if (recyclable) owners.set(buffer, { storage, mark: nextMark() })
  return storage
}

/**
 * The mark of storage made now (DType gives it to each view of a slab; `allocate` keeps it for
 * its own buffers): its serial, for `madeSince`, and whether it is made inside `freshWithin`.
 * Kept beside the storage's record (a slab's map of its views, `owners`), never in a weak
 * collection per storage: ephemerons by the thousand a step slowed V8's marking.
 * @category mutations
 */
export const nextMark = (): number => {
  made += 1
  return 2 * made + (collecting > 0 ? 1 : 0)
}

/** The mark of storage this module or a slab handed out and did not take back. */
const markOf = (storage: DType.Storage): number | undefined => {
  const own = storage.buffer instanceof ArrayBuffer ? owners.get(storage.buffer) : undefined
  return own !== undefined ? (own.storage === storage ? own.mark : undefined) : Slabs.markOf(storage)
}

/**
 * The count of allocations so far: storage made after this call has a larger serial (`madeSince`).
 * @category getters
 */
export const serial = (): number => made

/**
 * Whether `storage` is storage this module or a slab handed out after `since` (a `serial`).
 * @category guards
 */
export const madeSince = (storage: DType.Storage, since: number): boolean => Math.floor((markOf(storage) ?? 0) / 2) > since

/**
 * Runs `f` (a backward rule, or the sums of its results), marking the recyclable storage it
 * makes as fresh: `isFresh` says so afterwards.
 * @category combinators
 */
export const freshWithin = <A>(f: () => A): A => {
  collecting += 1
  try {
    return f()
  } finally {
    collecting -= 1
  }
}

/**
 * Whether `storage` was made inside `freshWithin` (and is the very storage handed out then).
 * @category guards
 */
export const isFresh = (storage: DType.Storage): boolean => (markOf(storage) ?? 0) % 2 === 1

/**
 * Marks storage made outside `freshWithin` as if made inside it: a private collective's result
 * that a backward pass received from the transport (BackwardPass `giveEffect`). Only the very
 * storage this module or a slab handed out is marked.
 * @category mutations
 */
export const markFresh = (storage: DType.Storage): void => {
  const own = storage.buffer instanceof ArrayBuffer ? owners.get(storage.buffer) : undefined
  if (own !== undefined) {
    if (own.storage === storage) owners.set(storage.buffer as ArrayBuffer, { storage, mark: own.mark | 1 })
    return
  }
  Slabs.remark(storage, (mark) => mark | 1)
}

/**
 * Marks `storage` as kept by something that outlives its maker: `recycle` takes neither it nor
 * any storage sharing bytes with it until every `keep` has been matched by a `letGo`.
 * @category mutations
 */
export const keep = (storage: DType.Storage): void => {
  const held = kept.get(storage.buffer)
  if (held === undefined) kept.set(storage.buffer, [storage])
  else held.push(storage)
}

/**
 * Ends one `keep` of `storage`; if it was offered back meanwhile (`recycle` declined it because
 * it was kept) and nothing keeps it any more, it is taken now.
 * @category mutations
 */
export const letGo = (storage: DType.Storage): void => {
  const held = kept.get(storage.buffer)
  const at = held?.indexOf(storage) ?? -1
  if (held === undefined || at < 0) return
  held.splice(at, 1)
  if (held.length === 0) kept.delete(storage.buffer)
  if (waiting.has(storage) && !isKept(storage)) {
    waiting.delete(storage)
    recycle(storage)
  }
}

const isKept = (storage: DType.Storage): boolean => kept.get(storage.buffer)?.some((k) => DType.overlapsInBuffer(k, storage)) ?? false

/**
 * Hand `storage` back: its buffer will serve later requests of its class. The caller asserts
 * nothing reads or writes it afterwards (in checking mode every view of its buffer is
 * detached, so a reader that does sees an empty array). Returns whether it was taken: only
 * storage this module or a slab handed out is (that very view; not a part of it, shared memory
 * or buffers made elsewhere), not while it is kept, and not when the pool is full or recycling
 * is off.
 * @category mutations
 */
export const recycle = (storage: DType.Storage): boolean => {
  const buffer = storage.buffer
  if (isKept(storage)) {
    if (markOf(storage) !== undefined) waiting.add(storage)
    return false
  }
  if (Slabs.handBack(storage)) {
    recycledCount += 1
    return true
  }
  if (!enabled || !(buffer instanceof ArrayBuffer) || owners.get(buffer)?.storage !== storage) return false
  const bytes = buffer.byteLength
  if (pooledBytes + bytes > capBytes) return false
  owners.delete(buffer)
  const moved = checking ? structuredClone(buffer, { transfer: [buffer] }) : buffer
  const list = free.get(bytes)
  if (list === undefined) free.set(bytes, [moved])
  else list.push(moved)
  pooledBytes += bytes
  recycledCount += 1
  return true
}

/**
 * Hand back the storage of a host tensor that no tape recorded (nothing saved it for a backward
 * pass) and that the caller made and knows to be dead, as `recycle`. Tensors on a device or on
 * a tape are declined.
 * @category mutations
 */
export const recycleTensor = (t: Tensor): boolean => t.tape === undefined && t.device.kind === "cpu" && t.hostStorage !== undefined && recycle(t.hostStorage)

/**
 * What the pool holds and has done on this thread (for tests and the bench).
 * @category getters
 */
export const stats = (): { readonly pooledBytes: number; readonly recycled: number; readonly reused: number; readonly reusedSlabs: number } => ({
  pooledBytes,
  recycled: recycledCount,
  reused: reusedCount,
  reusedSlabs: Slabs.reused(),
})

/**
 * Drop every pooled buffer (the collector frees them).
 * @category mutations
 */
export const clear = (): void => {
  free.clear()
  pooledBytes = 0
  Slabs.clear()
}
