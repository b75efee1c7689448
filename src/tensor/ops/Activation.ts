/**
 * SwiGLU: silu(gate) * up, fused, the activation of the expert FFNs.
 *
 * Shapes: gate and up are equal (typically [tokens, ffnHidden]) -> the same shape. No
 * broadcasting: the two halves of a gated FFN always agree, and a mismatch is a wiring bug.
 *
 * Fusing saves the intermediate silu(gate) tensor and one tape node per expert; the forward pass
 * runs on the dtype's `swiglu` kernel. SiLU alone is Elementwise.silu.
 *
 * Backward, with s = sigmoid(gate) and g = dy:
 *   dgate = g * up * s * (1 + gate * (1 - s))      dup = g * gate * s
 */
import * as Autograd from "../Autograd.js"
import * as DType from "../DType.js"
import * as Kernels from "../kernels/Kernels.js"
import { reference } from "../kernels/Reference.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/** sigmoid, without overflow for large |x|. */
const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))

/**
 * silu(gate) * up, elementwise.
 * @category combinators
 */
export const swiglu = (gate: Tensor.Tensor, up: Tensor.Tensor): Tensor.Tensor => {
  Autograd.sameKind("swiglu", gate, up)
  if (gate.rank !== up.rank || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw TensorError.shape("swiglu", `gate ${TensorError.formatShape(gate.shape)} and up ${TensorError.formatShape(up.shape)} must have the same shape`)
  }
  const out = DType.allocate(gate.dtype, gate.size)
  Kernels.forDType(gate.dtype, reference).swiglu(gate.data, up.data, out)
  return Autograd.result("swiglu", [gate, up], out, gate.shape, (g) => {
    const gy = g.data
    const a = gate.data
    const b = up.data
    const dGate = gate.requiresGrad ? DType.allocate(g.dtype, gate.size) : undefined
    const dUp = up.requiresGrad ? DType.allocate(g.dtype, up.size) : undefined
    for (let i = 0; i < gy.length; i++) {
      const x = a[i] as number
      const s = sigmoid(x)
      const gi = gy[i] as number
      if (dGate !== undefined) dGate[i] = gi * (b[i] as number) * s * (1 + x * (1 - s))
      if (dUp !== undefined) dUp[i] = gi * x * s
    }
    return [
      dGate === undefined ? undefined : Tensor.fromStorage(dGate, gate.shape, { device: g.device }),
      dUp === undefined ? undefined : Tensor.fromStorage(dUp, up.shape, { device: g.device }),
    ]
  })
}
