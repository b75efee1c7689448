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
 */
import * as DType from "./DType.js"
import * as Device from "./Device.js"
import type { DeviceArray, DeviceRuntime } from "./device/DeviceRuntime.js"
import { isDeviceArray } from "./device/DeviceRuntime.js"
import * as AddInto from "./kernels/AddInto.js"
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
 * Adds the gradient `g` (the leaf's whole shape) into the accumulator `storage`, or stores it
 * there when the accumulator is cleared.
 * @category combinators
 */
export const addGradient = (storage: Accumulator, g: Tensor.Tensor): void => {
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
 * are then added into the device accumulator.
 * @category combinators
 */
export const productInto = (runtime: DeviceRuntime | undefined, into: Accumulator, product: (out: DType.Storage | DeviceArray, accumulate: boolean) => void): void => {
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
  if (!cleared.delete(storage)) return
  if (isDeviceArray(storage)) storage.runtime.kernels.copy(storage.runtime.zeros(storage.dtype, storage.length), storage)
  else storage.fill(0)
}
