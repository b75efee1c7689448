/**
 * GatedActivation: the gated MLP activation with Megatron-Core's options, of which SwiGLU is the
 * plain case:
 *
 *   g' = min(gate, limit)   u' = clamp(up, -limit, limit)   (no clamp without a limit)
 *   out = g' * sigmoid(alpha * g') * (u' + offset)
 *
 * alpha 1 is SiLU (SwiGLU); 1.702 is quick-GELU (Megatron's --quick-geglu); offset is
 * --glu-linear-offset and limit --activation-func-clamp-value. GPT-OSS's experts are alpha 1.702,
 * offset 1, limit 7. Shapes: gate and up equal, out the same.
 *
 * Backward, with s = sigmoid(alpha g') and dy the output gradient (a clamped input passes no
 * gradient where the clamp bit, as torch.clamp's: it passes at the bounds themselves):
 *   dgate = dy * (u' + offset) * s * (1 + alpha g' (1 - s))   where gate <= limit, else 0
 *   dup   = dy * g' * s                                        where |up| <= limit, else 0
 *
 * The plain case runs the SwiGLU kernels (Activation.swiglu). The others run, on the host, each
 * element in float64 rounded once to the storage dtype (kernels/GatedInto: the native kernels for
 * float32, its loops otherwise); on a device, on the device's kernels (DeviceKernels'
 * gatedActivation: sim, the host's; cuda, kernels/gated_sinks.cu, the same float64 arithmetic).
 */
import * as Autograd from "../Autograd.js"
import type { DeviceRuntime } from "../device/DeviceRuntime.js"
import * as Place from "../device/Place.js"
import { gatedBackwardInto, gatedInto } from "../kernels/GatedInto.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"
import { swiglu } from "./Activation.js"

/**
 * The activation's options.
 * @category models
 */
export interface Glu {
  /** The sigmoid's slope: 1 (SiLU) or quickGeluAlpha. */
  readonly alpha: number
  /** Added to the linear half. */
  readonly offset: number
  /** Clamps the gate half from above and the linear half on both sides; none when undefined. */
  readonly limit?: number | undefined
}

/**
 * quick-GELU's slope: x * sigmoid(1.702 x) (Megatron-Core's quick_gelu, GPT-OSS's alpha).
 * @category configuration
 */
export const quickGeluAlpha = 1.702

/**
 * Whether `glu` is plain SwiGLU (or absent).
 * @category guards
 */
export const isPlain = (glu: Glu | undefined): boolean => glu === undefined || (glu.alpha === 1 && glu.offset === 0 && glu.limit === undefined)

/**
 * The gated activation of `gate` and `up` with `glu`'s options (SwiGLU when plain or absent).
 * @category combinators
 */
export const gated = (gate: Tensor.Tensor, up: Tensor.Tensor, glu: Glu | undefined): Tensor.Tensor => {
  if (glu === undefined || isPlain(glu)) return swiglu(gate, up)
  const op = "gatedActivation"
  Autograd.sameKind(op, gate, up)
  if (!Tensor.sameShape(gate.shape, up.shape))
    throw TensorError.shape(op, `gate ${TensorError.formatShape(gate.shape)} and up ${TensorError.formatShape(up.shape)} must have the same shape`)
  const place = Place.of(op, gate, up)
  const k = kernelsAt(place.runtime)
  const out = place.allocate(gate.dtype, gate.size)
  k.forward(place.operand(gate), place.operand(up), out, glu)
  return Autograd.result(op, [gate, up], out, gate.shape, (dy) => {
    const dGate = gate.requiresGrad ? place.allocate(dy.dtype, gate.size) : undefined
    const dUp = up.requiresGrad ? place.allocate(dy.dtype, up.size) : undefined
    k.backward(place.operand(gate), place.operand(up), place.operand(dy), dGate, dUp, glu)
    return [dGate === undefined ? undefined : Place.tensor(dGate, gate.shape, dy.device), dUp === undefined ? undefined : Place.tensor(dUp, up.shape, dy.device)]
  })
}

/** The activation's kernels over one place's storage. */
interface GatedKernels {
  readonly forward: (gate: Place.Buffer, up: Place.Buffer, out: Place.Buffer, glu: Glu) => void
  readonly backward: (gate: Place.Buffer, up: Place.Buffer, dy: Place.Buffer, dGate: Place.Buffer | undefined, dUp: Place.Buffer | undefined, glu: Glu) => void
}

/** The host's kernels (GatedInto), or the device's; each place hands them only its own storage. */
const kernelsAt = (rt: DeviceRuntime | undefined): GatedKernels =>
  (rt === undefined
    ? { forward: gatedInto, backward: gatedBackwardInto }
    : { forward: rt.kernels.gatedActivation, backward: rt.kernels.gatedActivationBackward }) as unknown as GatedKernels
