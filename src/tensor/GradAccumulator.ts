/**
 * GradAccumulator: a leaf whose gradients go straight into storage its owner keeps (a trainer's
 * gradient accumulator over a step's micro-batches), as Megatron's gradient accumulation fusion
 * does: a weight-gradient product adds its result into the accumulator inside the GEMM
 * (`accumulate`), instead of writing a fresh [in, out] gradient that is then added in a second
 * pass; every other gradient of the leaf is added into it as the backward pass reaches it.
 *
 * A bound leaf's `.grad` stays undefined: its gradients live only in the accumulator. The sum is
 * the same as collecting `.grad` and adding it afterwards, up to the order of the additions (a
 * product adds each of its k blocks as it goes, and a leaf used twice adds each use in turn).
 *
 * Clearing is lazy, as PyTorch's zero_grad(set_to_none=True) is: `clear` marks an accumulator
 * as holding zeros without writing it; the first gradient that reaches it overwrites it whole
 * (`accumulates` / `addGradient`: it is stored instead of added, the same value as 0 + x), and `settle`
 * writes the zeros of one that no gradient reached before anyone reads it. A realistic MoE step
 * zeroed ~560 MB of accumulators (~80 ms) only to add its single micro-batch into them.
 *
 * Weight-gradient products of few rows are deferred (`deferProduct`): a product out += A^T B
 * whose operands (A [k, m], B [k, n]) are small beside out [m, n] reads and writes all of out to
 * add a thin sum into it, once per micro-batch, so such products wait on the accumulator and run
 * as one product over all their rows when anything reads or adds into it (`settle`,
 * `addGradient`, another product), or when the rows they hold reach half of out's size: the
 * gradient accumulator is swept once per step instead of once per micro-batch (the default
 * model at hidden 1024 streams its ~48 MB of weight gradients 8 times a step otherwise). The sum
 * is the same up to the order of additions (rows summed in one product before out is added).
 *
 * Where a thread fills its waits (`waitFiller`: a threads job's worker), a host weight-gradient
 * product is queued instead of run, and runs when its thread would otherwise wait on a peer (a
 * collective whose other members have not arrived), or when anything reads or adds into its
 * accumulator, whichever comes first: the same products on the same accumulators in the same
 * order (the same bits), computed while the rank would have idled.
 */
import * as DType from "./DType.js"
import * as Device from "./Device.js"
import type { DeviceArray, DeviceRuntime } from "./device/DeviceRuntime.js"
import { isDeviceArray } from "./device/DeviceRuntime.js"
import * as AddInto from "./kernels/AddInto.js"
import * as StorageRecycler from "./StorageRecycler.js"
import * as Tensor from "./Tensor.js"
import * as TensorError from "./TensorError.js"

const accumulators = new WeakMap<Tensor.Tensor, Accumulator>()

/** Accumulators that hold zeros in meaning but not yet in memory. */
const cleared = new WeakSet<Accumulator>()

/**
 * An accumulator: host storage, or a device array of the leaf's device (a leaf on a device
 * accumulates there: ChunkRun's device runs download it once a step, not per micro-batch).
 * @category models
 */
export type Accumulator = DType.Storage | DeviceArray

/**
 * Sends `leaf`'s gradients into `storage` (same dtype, one element per element of the leaf).
 * @category constructors
 */
export const bind = (leaf: Tensor.Tensor, storage: Accumulator): void => {
  if (!leaf.isLeaf || !leaf.requiresGrad) throw TensorError.shape("GradAccumulator.bind", "needs a leaf that requires grad")
  const device = isDeviceArray(storage)
  const dtype = device ? storage.dtype : DType.of(storage)
  if (storage.length !== leaf.size || dtype !== leaf.dtype || (device && !Device.same(storage.runtime.device, leaf.device)))
    throw TensorError.shape(
      "GradAccumulator.bind",
      `an accumulator of ${storage.length} ${device ? `${dtype} on ${Device.format(storage.runtime.device)}` : storage.constructor.name} for a ${leaf.dtype} leaf of ${leaf.size}${Device.isAccelerator(leaf.device) ? ` on ${Device.format(leaf.device)}` : ""}`,
    )
  accumulators.set(leaf, storage)
}

/**
 * The accumulator bound to `t`, if it is such a leaf.
 * @category getters
 */
export const of = (t: Tensor.Tensor): Accumulator | undefined => accumulators.get(t)

/**
 * Marks `storage` as all zeros without writing it (see the header).
 * @category combinators
 */
export const clear = (storage: Accumulator): void => {
  // Products still deferred or queued belong to a sum no one read: zeros now.
  dropQueued(storage)
  const d = deferred.get(storage)
  deferred.delete(storage)
  if (d !== undefined) letGo(d)
  cleared.add(storage)
}

/** True once for a cleared accumulator, which the caller then writes whole (counted as written). */
const takeCleared = (storage: Accumulator): boolean => cleared.delete(storage)

/**
 * Whether a product writing a whole gradient into `into` adds to it (`accumulate`) or stores it:
 * it stores into fresh storage (no accumulator) and into a cleared accumulator, which then
 * counts as written.
 */
const accumulates = (into: Accumulator | undefined): boolean => into !== undefined && !takeCleared(into)

/**
 * A deferred product's operand: host storage or a device array of the accumulator's device.
 * @category models
 */
export type Operand = Float32Array | DeviceArray

/** The weight-gradient products waiting on an accumulator (see the header). */
interface Deferred {
  readonly m: number
  readonly n: number
  readonly blocks: Array<{ readonly a: Operand; readonly b: Operand; readonly k: number }>
  rows: number
  /** out (+)= A^T B for A [k, m], B [k, n] (the product the blocks are parts of), where out is. */
  readonly product: (a: Operand, b: Operand, out: Accumulator, k: number, accumulate: boolean) => void
}

const deferred = new WeakMap<Accumulator, Deferred>()

/**
 * Whether a product out (+)= A^T B (A [k, m], B [k, n]) into a float32 accumulator is deferred:
 * its operands hold at most an eighth of out's elements (memory-bound on out).
 * @category guards
 */
export const defers = (into: Accumulator, m: number, n: number, k: number): boolean =>
  (isDeviceArray(into) ? into.dtype === "float32" : into instanceof Float32Array) && k > 0 && 8 * k * (m + n) <= m * n

/**
 * Defers into `into` the product out (+)= A^T B of `a` [k, m] and `b` [k, n], both where `into`
 * is (`defers` says when; the operands must not change until it runs): it runs with the ones
 * deferred before it, as one product over all their rows, when the accumulator is read or added
 * into (see the header).
 * @category combinators
 */
export const deferProduct = (into: Accumulator, a: Operand, b: Operand, m: number, n: number, k: number, product: Deferred["product"]): void => {
  let d = deferred.get(into)
  if (d !== undefined && (d.m !== m || d.n !== n)) {
    flush(into)
    d = undefined
  }
  if (d === undefined) {
    d = { m, n, blocks: [], rows: 0, product }
    deferred.set(into, d)
  }
  // The operands wait here past their makers' passes: never handed back (BackwardPass).
  if (!isDeviceArray(a)) StorageRecycler.keep(a)
  if (!isDeviceArray(b)) StorageRecycler.keep(b)
  d.blocks.push({ a, b, k })
  d.rows += k
  // Held rows bounded by half of out: flushed (one sweep of out) when they reach it.
  if (2 * d.rows * (m + n) >= m * n) flush(into)
}

/**
 * The bytes the products deferred or queued on `accumulators` hold now (their operands' rows):
 * memory a step keeps beyond its tapes (RankMemory's activation peak counts it).
 * @category getters
 */
export const heldBytes = (accumulators: Iterable<Accumulator>): number => {
  let bytes = 0
  const mine = new Set<Accumulator>()
  for (const a of accumulators) {
    mine.add(a)
    const d = deferred.get(a)
    if (d !== undefined) bytes += 4 * d.rows * (d.m + d.n)
  }
  for (const q of queued ?? []) if (mine.has(q.into)) for (const o of q.operands) bytes += o.byteLength
  return bytes
}

/** The blocks' operands `pick` end to end ([rows, cols]), where the accumulator is. */
const joined = (into: Accumulator, d: Deferred, pick: (block: Deferred["blocks"][number]) => Operand, cols: number): Operand => {
  const only = d.blocks.length === 1 ? d.blocks[0] : undefined
  if (only !== undefined) return pick(only)
  const runtime = isDeviceArray(into) ? into.runtime : undefined
  const out = runtime === undefined ? (DType.allocateUninitialized("float32", d.rows * cols) as Float32Array) : runtime.allocate("float32", d.rows * cols)
  let row = 0
  for (const block of d.blocks) {
    const x = pick(block)
    if (runtime === undefined) (out as Float32Array).set((x as Float32Array).subarray(0, block.k * cols), row * cols)
    else runtime.kernels.copyRange(x as DeviceArray, 0, out as DeviceArray, row * cols, block.k * cols)
    row += block.k
  }
  return out
}

/** The deferred operands wait no more: storage offered back meanwhile goes to the recycler. */
const letGo = (d: Deferred): void => {
  for (const block of d.blocks) {
    if (!isDeviceArray(block.a)) StorageRecycler.letGo(block.a)
    if (!isDeviceArray(block.b)) StorageRecycler.letGo(block.b)
  }
}

/** A product queued to fill a wait: its accumulator, what it reads, and the product itself. */
interface Queued {
  readonly into: Accumulator
  readonly operands: ReadonlyArray<DType.Storage>
  readonly run: () => void
}

/** This thread's queued products, oldest first (undefined: the thread runs products at once). */
let queued: Array<Queued> | undefined

const release = (q: Queued): void => {
  for (const o of q.operands) StorageRecycler.letGo(o)
}

const runQueued = (q: Queued): void => {
  q.run()
  release(q)
}

/** Takes out of the queue the products `pick` selects, oldest first. */
const takeQueued = (pick: (q: Queued) => boolean): ReadonlyArray<Queued> => {
  if (queued === undefined || queued.length === 0) return []
  const taken = queued.filter(pick)
  if (taken.length > 0) queued = queued.filter((q) => !pick(q))
  return taken
}

/** Runs the products queued on `into`, oldest first. */
const runQueuedOn = (into: Accumulator): void => {
  for (const q of takeQueued((q) => q.into === into)) runQueued(q)
}

/** Drops the products queued on `into` unrun. */
const dropQueued = (into: Accumulator): void => {
  for (const q of takeQueued((q) => q.into === into)) release(q)
}

/**
 * The work a thread can do while it would wait on a peer (see the header).
 * @category models
 */
export interface WaitFiller {
  /** Whether a queued product waits. */
  readonly pending: () => boolean
  /** Runs the oldest queued product. */
  readonly runOne: () => void
  /** Runs every queued product; the thread runs its products at once from now on. */
  readonly stop: () => void
}

/**
 * Forgets every product this thread has queued, without running it (a worker whose job ended
 * before settling its accumulators: nothing reads them any more).
 * @category mutations
 */
export const forgetQueued = (): void => {
  for (const q of takeQueued(() => true)) release(q)
}

/**
 * Makes this thread queue its host weight-gradient products and returns what runs them while
 * it waits (see the header).
 * @category constructors
 */
export const waitFiller = (): WaitFiller => {
  queued ??= []
  return {
    pending: () => (queued?.length ?? 0) > 0,
    runOne: () => {
      const q = queued?.shift()
      if (q !== undefined) runQueued(q)
    },
    stop: () => {
      const all = queued ?? []
      queued = undefined
      for (const q of all) runQueued(q)
    },
  }
}

/** Runs the products deferred or queued on `into`, in the order they came. */
const flush = (into: Accumulator): void => {
  runQueuedOn(into)
  const d = deferred.get(into)
  if (d === undefined) return
  deferred.delete(into)
  const a = joined(into, d, (x) => x.a, d.m)
  const b = joined(into, d, (x) => x.b, d.n)
  d.product(a, b, into, d.rows, accumulates(into))
  letGo(d)
  // The joined rows were made here for this product alone.
  if (d.blocks.length > 1 && !isDeviceArray(a) && !isDeviceArray(b)) {
    StorageRecycler.recycle(a)
    StorageRecycler.recycle(b)
  }
}

/**
 * Adds the gradient `g` (the leaf's whole shape) into the accumulator `storage`, or stores it
 * there when the accumulator is cleared.
 * @category combinators
 */
export const addGradient = (storage: Accumulator, g: Tensor.Tensor): void => {
  flush(storage)
  if (isDeviceArray(storage)) {
    const runtime = storage.runtime
    if (takeCleared(storage)) runtime.kernels.copy(g.deviceArray(runtime), storage)
    else runtime.kernels.add(storage, g.deviceArray(runtime), storage)
    return
  }
  if (takeCleared(storage)) storage.set(g.readHost())
  else AddInto.addInto(storage, g.readHost())
}

/**
 * Runs a product that writes a whole gradient (`product(out, accumulate)`: out += when
 * accumulating, else out =) into the accumulator `into`, where the product computes (`runtime`;
 * undefined: the host). On a device a device accumulator is written in place and a host one is
 * staged there and back, so that the product adds inside the GEMM as on the host (the same sums
 * in the same order); a host product (bf16) of device tensors writes new storage whose values
 * are then added into the device accumulator. `operands`: the host storage the product reads,
 * given where it may wait to fill its thread's waits (see the header).
 * @category combinators
 */
export const productInto = (
  runtime: DeviceRuntime | undefined,
  into: Accumulator,
  product: (out: DType.Storage | DeviceArray, accumulate: boolean) => void,
  operands?: ReadonlyArray<DType.Storage | DeviceArray>,
): void => {
  flush(into)
  if (queued !== undefined && runtime === undefined && !isDeviceArray(into) && operands !== undefined && !operands.some(isDeviceArray)) {
    // Queued: it reads its operands later, so nothing hands them back meanwhile.
    const host = operands as ReadonlyArray<DType.Storage>
    const accumulate = accumulates(into)
    for (const o of host) StorageRecycler.keep(o)
    queued.push({ into, operands: host, run: () => product(into, accumulate) })
    return
  }
  if (runtime !== undefined) {
    const accumulate = accumulates(into)
    if (isDeviceArray(into)) return product(into, accumulate)
    const staged = accumulate ? runtime.upload(into) : runtime.allocate(DType.of(into), into.length)
    product(staged, accumulate)
    runtime.download(staged, into)
    return
  }
  if (isDeviceArray(into)) {
    const out = DType.allocateUninitialized(into.dtype, into.length)
    product(out, false)
    addGradient(into, Tensor.fromStorage(out, [out.length], { device: into.runtime.device }))
    return
  }
  product(into, accumulates(into))
}

/**
 * A device accumulator's sums into host storage of its size (the step's gradient, for the host's
 * reduction and optimizer): downloaded, or zeros when no gradient reached it.
 * @category combinators
 */
export const downloadInto = (storage: DeviceArray, host: DType.Storage): void => {
  flush(storage)
  // `host` is written whole: no longer a cleared accumulator itself.
  cleared.delete(host)
  if (takeCleared(storage)) host.fill(0)
  else storage.runtime.download(storage, host)
}

/**
 * Writes the zeros of a cleared accumulator that no gradient reached; anything that reads an
 * accumulator after a backward pass (reductions, norms, the optimizer) settles it first.
 * @category combinators
 */
export const settle = (storage: Accumulator): void => {
  flush(storage)
  if (!cleared.delete(storage)) return
  if (isDeviceArray(storage)) storage.runtime.kernels.copy(storage.runtime.zeros(storage.dtype, storage.length), storage)
  else storage.fill(0)
}
