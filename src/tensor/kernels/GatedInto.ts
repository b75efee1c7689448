/**
 * GatedInto: the gated MLP activation with Megatron-Core's options (tensor/ops/GatedActivation's
 * formula) and its gradients on storage, for the host op and the simulated device alike:
 *
 *   g' = min(gate, limit)   u' = clamp(up, -limit, limit)   out = g' sigmoid(alpha g') (u' + offset)
 *   dgate = dy (u' + offset) s (1 + alpha g' (1 - s))   where gate <= limit, else 0
 *   dup   = dy g' s                                      where |up| <= limit, else 0
 *
 * with s = sigmoid(alpha g'). Each element in float64, rounded once to the storage's dtype:
 * float32 on the native kernels (kernels/gated_activation.h, the same arithmetic: at most one
 * float32 ulp from these loops, where the exponential's last float64 bit decides a rounding) where
 * they are built and in use (not PLEAT_KERNELS=reference), these loops otherwise.
 */
import * as CpuOptional from "../../native/CpuOptional.js"
import type * as DType from "../DType.js"
import * as Kernels from "./Kernels.js"

const native = CpuOptional.gatedActivationKernels()

/** The native kernels for float32 storage with the native kernels in use; undefined otherwise. */
const nativeFor = (x: DType.Storage) => (x instanceof Float32Array && native !== undefined && Kernels.native() !== undefined ? native : undefined)

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))

/**
 * out[i] = the activation of gate[i] and up[i] (one length, one dtype).
 * @category kernels
 */
export const gatedInto = (gate: DType.Storage, up: DType.Storage, out: DType.Storage, glu: CpuOptional.GluOptions): void => {
  const kernels = nativeFor(gate)
  if (kernels !== undefined && up instanceof Float32Array && out instanceof Float32Array) {
    kernels.forward(gate as Float32Array, up, out, glu)
    return
  }
  const { alpha, offset } = glu
  const limit = glu.limit ?? Number.POSITIVE_INFINITY
  for (let i = 0; i < gate.length; i++) {
    const g = Math.min(gate[i] as number, limit)
    const u = Math.min(Math.max(up[i] as number, -limit), limit)
    out[i] = g * sigmoid(alpha * g) * (u + offset)
  }
}

/**
 * dGate and dUp (either may be undefined: not wanted) for the output gradient `dy`.
 * @category kernels
 */
export const gatedBackwardInto = (
  gate: DType.Storage,
  up: DType.Storage,
  dy: DType.Storage,
  dGate: DType.Storage | undefined,
  dUp: DType.Storage | undefined,
  glu: CpuOptional.GluOptions,
): void => {
  const kernels = nativeFor(gate)
  const f32 = (x: DType.Storage | undefined) => x === undefined || x instanceof Float32Array
  if (kernels !== undefined && up instanceof Float32Array && dy instanceof Float32Array && f32(dGate) && f32(dUp)) {
    kernels.backward(gate as Float32Array, up, dy, dGate as Float32Array | undefined, dUp as Float32Array | undefined, glu)
    return
  }
  const { alpha, offset } = glu
  const clamped = glu.limit !== undefined
  const limit = glu.limit ?? Number.POSITIVE_INFINITY
  for (let i = 0; i < gate.length; i++) {
    const gateIn = gate[i] as number
    const upIn = up[i] as number
    const g = Math.min(gateIn, limit)
    const u = Math.min(Math.max(upIn, -limit), limit)
    const s = sigmoid(alpha * g)
    const grad = dy[i] as number
    if (dGate !== undefined) dGate[i] = !clamped || gateIn <= limit ? grad * (u + offset) * s * (1 + alpha * g * (1 - s)) : 0
    if (dUp !== undefined) dUp[i] = !clamped || (upIn >= -limit && upIn <= limit) ? grad * g * s : 0
  }
}
