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
 * The plain case runs the SwiGLU kernels (Activation.swiglu). The others run on the host, each
 * element in float64 and rounded once to the storage dtype (float32 or float64, bf16 values in
 * float32 storage alike): float32 on the native kernels (kernels/gated_activation.h, the same
 * arithmetic: at most one float32 ulp from these loops, where the exponential's last float64 bit
 * decides a rounding) where they are built and in use, the loops here otherwise. A host-only op,
 * which the command line refuses with --device.
 */
import * as CpuOptional from "../../native/CpuOptional.js"
import * as Autograd from "../Autograd.js"
import * as Device from "../Device.js"
import * as DType from "../DType.js"
import * as Tensor from "../Tensor.js"
import * as Kernels from "../kernels/Kernels.js"
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

const native = CpuOptional.gatedActivationKernels()

/** The native kernels for these operands: float32 on the host, the native kernels in use (not PLEAT_KERNELS=reference). */
const nativeFor = (t: Tensor.Tensor) => (t.dtype === "float32" && native !== undefined && Kernels.native() !== undefined ? native : undefined)

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))

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
  if (Device.isAccelerator(gate.device)) throw TensorError.shape(op, `runs on the host only, got tensors on ${gate.device}`)
  const { alpha, offset } = glu
  const clamped = glu.limit !== undefined
  const limit = glu.limit ?? Number.POSITIVE_INFINITY
  const x = gate.data
  const y = up.data
  const n = gate.size
  const out = DType.allocate(gate.dtype, n)
  const kernels = nativeFor(gate)
  if (kernels !== undefined) kernels.forward(x as Float32Array, y as Float32Array, out as Float32Array, glu)
  else
    for (let i = 0; i < n; i++) {
      const g = Math.min(x[i] as number, limit)
      const u = Math.min(Math.max(y[i] as number, -limit), limit)
      out[i] = g * sigmoid(alpha * g) * (u + offset)
    }
  return Autograd.result(op, [gate, up], out, gate.shape, (dy) => {
    const d = dy.data
    const dGate = gate.requiresGrad ? DType.allocate(dy.dtype, n) : undefined
    const dUp = up.requiresGrad ? DType.allocate(dy.dtype, n) : undefined
    const backward = dy.dtype === gate.dtype ? nativeFor(dy) : undefined
    if (backward !== undefined) backward.backward(x as Float32Array, y as Float32Array, d as Float32Array, dGate as Float32Array | undefined, dUp as Float32Array | undefined, glu)
    else
      for (let i = 0; i < n; i++) {
        const gateIn = x[i] as number
        const upIn = y[i] as number
        const g = Math.min(gateIn, limit)
        const u = Math.min(Math.max(upIn, -limit), limit)
        const s = sigmoid(alpha * g)
        const grad = d[i] as number
        if (dGate !== undefined) dGate[i] = !clamped || gateIn <= limit ? grad * (u + offset) * s * (1 + alpha * g * (1 - s)) : 0
        if (dUp !== undefined) dUp[i] = !clamped || (upIn >= -limit && upIn <= limit) ? grad * g * s : 0
      }
    return [
      dGate === undefined ? undefined : Tensor.fromStorage(dGate, gate.shape, { device: dy.device }),
      dUp === undefined ? undefined : Tensor.fromStorage(dUp, up.shape, { device: dy.device }),
    ]
  })
}
