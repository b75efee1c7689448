/**
 * Bf16: the cast of a float32 tensor to bfloat16 values, how fp32 master weights enter a bf16
 * micro-batch.
 *
 * Forward: a new float32 tensor holding the bf16 rounding of each element (Bf16Round: nearest,
 * ties to even; storage stays float32, so the float32 kernels run on bf16 values). Backward:
 * the identity (straight-through), so the gradient of the bf16 copy lands, in fp32, on the
 * fp32 master leaf it was cast from, as mixed-precision training does (Megatron copies bf16
 * params from fp32 main params and accumulates their gradients into fp32 main grads).
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
