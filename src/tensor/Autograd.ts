/**
 * Autograd: how an op turns its forward result into a tensor on the right tape.
 *
 * Every op computes its output storage, then calls `result` with its inputs and backward rule.
 * `result` finds the tape (all inputs that require grad must share one), records the node when
 * the tape records and some input requires grad, and runs the non-finite guard when it is on.
 * Custom ops (the collectives of the runtime) register their backward the same way.
 *
 * On a bf16 tape (Tape.ts) `output` is also where mixed precision happens: in the forward
 * outside `fullPrecision`, a float32 output is rounded to bfloat16 values before anything
 * sees it, so the next op and the backward rule both get the bf16 value. A float32 tape,
 * float64 storage, backward passes (gradients), fp32 regions and scalar outputs (the losses
 * and their sums, computed in fp32 as Megatron does) are never touched.
 */
import type * as Effect from "effect/Effect"
import * as Device from "./Device.js"
import { type DeviceArray, isDeviceArray } from "./device/DeviceRuntime.js"
import type { Buffer } from "./device/Place.js"
import * as DType from "./DType.js"
import * as Bf16Round from "./kernels/Bf16Round.js"
import type { Node, Tape } from "./Tape.js"
import * as Tensor from "./Tensor.js"
import * as TensorError from "./TensorError.js"

/**
 * The tape that ops on these inputs record on, if any; two different tapes is an error.
 * @category mapping
 */
const tapeOf = (op: string, inputs: ReadonlyArray<Tensor.Tensor>): Tape | undefined => {
  let tape: Tape | undefined
  for (const t of inputs) {
    if (t.tape === undefined) continue
    if (tape !== undefined && t.tape !== tape) {
      throw TensorError.shape(op, `inputs are recorded on two tapes (${tape.name} and ${t.tape.name}); a tape belongs to one rank`)
    }
    tape = t.tape
  }
  return tape
}

/**
 * The output tensor of an op (on its inputs' device unless `device` says), and the node to record
 * when gradients are needed. A device array is the output's resident values; on a bf16 tape a
 * float32 output is rounded where it lies (the device's roundBf16 for a device array).
 */
const output = (
  op: string,
  inputs: ReadonlyArray<Tensor.Tensor>,
  data: Buffer,
  shape: ReadonlyArray<number>,
  rules: Pick<Node, "backward" | "backwardEffect" | "readsGradientOnHost" | "passThrough" | "privateStorage">,
  device: Device.Device | undefined = inputs[0]?.device,
): Tensor.Tensor => {
  const tape = tapeOf(op, inputs)
  const needsGrad = tape?.recording === true && inputs.some((t) => t.requiresGrad)
  const rounds = tape?.roundsToBf16 === true && shape.length > 0 && (isDeviceArray(data) ? data.dtype === "float32" : data instanceof Float32Array)
  const values = isDeviceArray(data) ? { resident: rounds ? roundedOnDevice(data, inputs) : data } : { data: rounds ? roundedOutput(data as Float32Array, inputs) : data }
  const out = new Tensor.Tensor({ shape, ...values, device, tape, requiresGrad: needsGrad, op })
  if (tape?.guardNonFinite === true) guard(op, out)
  if (needsGrad) tape.record({ op, inputs, output: out, ...rules })
  return out
}

/**
 * Wraps an op's output storage as a tensor, recording `backward` when gradients are needed.
 * @category constructors
 */
export const result = (
  op: string,
  inputs: ReadonlyArray<Tensor.Tensor>,
  data: Buffer,
  shape: ReadonlyArray<number>,
  backward: (gradOutput: Tensor.Tensor) => ReadonlyArray<Tensor.Tensor | undefined>,
): Tensor.Tensor => output(op, inputs, data, shape, { backward })

/**
 * Like `result`, for an op whose backward reads its gradient's values on the host (ops computed
 * there: the router, the losses): a backward run as an Effect downloads a device gradient first
 * without blocking the JS thread (Tape's `readsGradientOnHost`).
 * @category constructors
 */
export const hostResult = (
  op: string,
  inputs: ReadonlyArray<Tensor.Tensor>,
  data: Buffer,
  shape: ReadonlyArray<number>,
  backward: (gradOutput: Tensor.Tensor) => ReadonlyArray<Tensor.Tensor | undefined>,
): Tensor.Tensor => output(op, inputs, data, shape, { backward, readsGradientOnHost: true })

/**
 * Like `result`, for an op whose output lives on another device than its inputs (Transfer.to).
 * @category constructors
 */
export const resultOn = (
  device: Device.Device,
  op: string,
  inputs: ReadonlyArray<Tensor.Tensor>,
  data: Buffer,
  shape: ReadonlyArray<number>,
  backward: (gradOutput: Tensor.Tensor) => ReadonlyArray<Tensor.Tensor | undefined>,
): Tensor.Tensor => output(op, inputs, data, shape, { backward }, device)

/**
 * Like `result`, for ops whose backward is an Effect (collectives). Tapes holding such nodes
 * run `backwardEffect`. `privateStorage`: the transport kept neither the input nor `data` (Node).
 * @category constructors
 */
export const resultEffect = (
  op: string,
  inputs: ReadonlyArray<Tensor.Tensor>,
  data: Buffer,
  shape: ReadonlyArray<number>,
  backwardEffect: (gradOutput: Tensor.Tensor) => Effect.Effect<ReadonlyArray<Tensor.Tensor | undefined>, unknown>,
  privateStorage = false,
): Tensor.Tensor =>
  output(op, inputs, data, shape, {
    backward: () => {
      throw TensorError.shape(op, "has an effectful backward")
    },
    backwardEffect,
    ...(privateStorage ? { privateStorage } : {}),
  })

/**
 * Like `resultEffect`, for a collective that is the identity forward (a group of one, or
 * copyToGroup): the output is `t`'s own storage, and no transport saw it; `privateStorage`: the
 * backward's collective keeps neither side (Node).
 * @category constructors
 */
export const passThroughEffect = (
  op: string,
  t: Tensor.Tensor,
  backwardEffect: (gradOutput: Tensor.Tensor) => Effect.Effect<ReadonlyArray<Tensor.Tensor | undefined>, unknown>,
  privateStorage = false,
): Tensor.Tensor =>
  output(op, [t], t.values(), t.shape, {
    backward: () => {
      throw TensorError.shape(op, "has an effectful backward")
    },
    backwardEffect,
    passThrough: true,
    ...(privateStorage ? { privateStorage } : {}),
  })

/**
 * A device output rounded to bf16 values on its device: in place when the op made the array, into
 * a new one when it is an input's (an op that passes its input through), so that rounding never
 * changes a tensor that exists already.
 */
const roundedOnDevice = (data: DeviceArray, inputs: ReadonlyArray<Tensor.Tensor>): DeviceArray => {
  const { runtime } = data
  const borrowed = inputs.some((t) => t.isResident && t.values() === data)
  const out = borrowed ? runtime.allocate("float32", data.length) : data
  runtime.kernels.roundBf16(data, out)
  return out
}

/**
 * An op output rounded to bf16 values: in place when the op made the storage, into a copy when
 * it is an input's (a view, as reshape gives) or shared memory (a window other ranks see) and
 * not already bf16, so rounding never changes a tensor that exists already.
 */
const roundedOutput = (data: Float32Array, inputs: ReadonlyArray<Tensor.Tensor>): Float32Array => {
  const borrowed = !(data.buffer instanceof ArrayBuffer) || inputs.some((t) => t.hostStorage !== undefined && DType.overlaps(t.hostStorage, data))
  if (!borrowed) {
    Bf16Round.roundInto(data, data)
    return data
  }
  if (Bf16Round.isExact(data)) return data
  const copy = new Float32Array(data.length)
  Bf16Round.roundInto(data, copy)
  return copy
}

const guard = (op: string, t: Tensor.Tensor): void => {
  const d = t.readHost()
  for (let i = 0; i < d.length; i++) {
    const v = d[i] as number
    if (!Number.isFinite(v)) throw new TensorError.NonFiniteError({ op, index: i, value: v, shape: t.shape })
  }
}

/**
 * Checks that inputs share dtype and device, naming the op.
 * @category guards
 */
export const sameKind = (op: string, a: Tensor.Tensor, b: Tensor.Tensor): void => {
  if (a.dtype !== b.dtype) throw TensorError.shape(op, `dtypes differ: ${a.dtype} and ${b.dtype}`)
  if (!Device.same(a.device, b.device)) throw TensorError.shape(op, `devices differ: ${Device.format(a.device)} and ${Device.format(b.device)}`)
}
