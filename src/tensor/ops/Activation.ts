/**
 * SwiGLU: silu(gate) * up, fused, the activation of the expert FFNs.
 *
 * Shapes: gate and up are equal (typically [tokens, ffnHidden]) -> the same shape. No
 * broadcasting: the two halves of a gated FFN always agree, and a mismatch is a wiring bug.
 *
 * Fusing saves the intermediate silu(gate) tensor and one tape node per expert; both passes run
 * on the dtype's kernels (`swiglu`, `swigluBackward`). SiLU alone is Elementwise.silu.
 *
 * Backward, with s = sigmoid(gate) and g = dy:
 *   dgate = g * up * s * (1 + gate * (1 - s))      dup = g * gate * s
 */
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * silu(gate) * up, elementwise.
 * @category combinators
 */
export const swiglu = (gate: Tensor.Tensor, up: Tensor.Tensor): Tensor.Tensor => {
  Autograd.sameKind("swiglu", gate, up)
  if (!Tensor.sameShape(gate.shape, up.shape)) {
    throw TensorError.shape("swiglu", `gate ${TensorError.formatShape(gate.shape)} and up ${TensorError.formatShape(up.shape)} must have the same shape`)
  }
  // The kernels write every element.
  const place = Place.of("swiglu", gate, up)
  const out = place.allocate(gate.dtype, gate.size)
  place.kernels(gate.dtype).swiglu(place.operand(gate), place.operand(up), out)
  return Autograd.result("swiglu", [gate, up], out, gate.shape, (g) => {
    const dGate = gate.requiresGrad ? place.allocate(g.dtype, gate.size) : undefined
    const dUp = up.requiresGrad ? place.allocate(g.dtype, up.size) : undefined
    place.kernels(g.dtype).swigluBackward(place.operand(gate), place.operand(up), place.operand(g), dGate, dUp)
    return [dGate === undefined ? undefined : Place.tensor(dGate, gate.shape, g.device), dUp === undefined ? undefined : Place.tensor(dUp, up.shape, g.device)]
  })
}
