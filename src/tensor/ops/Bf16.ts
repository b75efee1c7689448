/**
 * Bf16: the cast of a float32 tensor to bfloat16 values, how fp32 master weights enter a bf16
 * micro-batch.
 *
 * `toBf16`, an op: a new float32 tensor holding the bf16 rounding of each element (Bf16Round:
 * nearest, ties to even; storage stays float32, so the float32 kernels run on bf16 values),
 * whose backward is the identity (straight-through): the gradient lands, in fp32, on the fp32
 * tensor it was cast from, as mixed-precision training does (Megatron copies bf16 params from
 * fp32 main params and accumulates their gradients into fp32 main grads).
 * `copyToBf16`: the same values detached, for a leaf of its own (the trainer's parameter
 * copies, which recompute needs to be leaves); its owner adds the leaf's gradient to the master.
 */
import * as Autograd from "../Autograd.js"
import type { DeviceArray } from "../device/DeviceRuntime.js"
import * as Place from "../device/Place.js"
import * as Bf16Round from "../kernels/Bf16Round.js"
import type * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/** The bf16 rounding of `t`'s values in new storage where `t` lies (the device's roundBf16 on a device). */
const rounded = (op: string, t: Tensor.Tensor): Place.Buffer => {
  if (t.dtype !== "float32") throw TensorError.shape(op, `needs float32 storage, got ${t.dtype}`)
  const place = Place.of(op, t)
  const out = place.allocate("float32", t.size)
  if (place.runtime === undefined) Bf16Round.roundInto(t.data as Float32Array, out as Float32Array)
  else place.runtime.kernels.roundBf16(t.deviceArray(place.runtime), out as DeviceArray)
  return out
}

/**
 * `t` rounded to bfloat16 values (a copy), with an identity backward. float32 only.
 * @category combinators
 */
export const toBf16 = (t: Tensor.Tensor): Tensor.Tensor => Autograd.result("toBf16", [t], rounded("toBf16", t), t.shape, (g) => [g.alias({ shape: t.shape })])

/**
 * A detached copy of `t` rounded to bfloat16 values (float32 storage), for a leaf of its own:
 * how a micro-batch takes a bf16 copy of an fp32 master weight. The leaf's gradient is the
 * master's (straight-through), added to the master gradient by whoever made the copy.
 * @category constructors
 */
export const copyToBf16 = (t: Tensor.Tensor): Tensor.Tensor => Place.tensor(rounded("copyToBf16", t), t.shape, t.device)
