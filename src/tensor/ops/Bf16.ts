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
import * as Bf16Round from "../kernels/Bf16Round.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * `t` rounded to bfloat16 values (a copy), with an identity backward. float32 only.
 * @category combinators
 */
export const toBf16 = (t: Tensor.Tensor): Tensor.Tensor => {
  if (!(t.data instanceof Float32Array)) throw TensorError.shape("toBf16", `needs float32 storage, got ${t.dtype}`)
  const out = new Float32Array(t.size)
  Bf16Round.roundInto(t.data, out)
  return Autograd.result("toBf16", [t], out, t.shape, (g) => [Tensor.fromStorage(g.data, t.shape, { device: g.device })])
}

/**
 * A detached copy of `t` rounded to bfloat16 values (float32 storage), for a leaf of its own:
 * how a micro-batch takes a bf16 copy of an fp32 master weight. The leaf's gradient is the
 * master's (straight-through), added to the master gradient by whoever made the copy.
 * @category constructors
 */
export const copyToBf16 = (t: Tensor.Tensor): Tensor.Tensor => {
  if (!(t.data instanceof Float32Array)) throw TensorError.shape("copyToBf16", `needs float32 storage, got ${t.dtype}`)
  const out = new Float32Array(t.size)
  Bf16Round.roundInto(t.data, out)
  return Tensor.fromStorage(out, t.shape, { device: t.device })
}
