/**
 * Place: where an op computes, the host or one device, so that an op's code is written once for
 * both. An op asks `Place.of(inputs)` and then takes its operands, new outputs and kernels from
 * it: on the host, typed arrays and the dtype's kernels (native float32, the reference
 * otherwise); on a device, device arrays (the inputs' values uploaded where they are not
 * resident) and the device runtime's kernels. Inputs on different devices are a TensorError
 * naming the op and both devices.
 */
import * as Device from "../Device.js"
import * as DType from "../DType.js"
import * as Bf16Matmul from "../kernels/Bf16Matmul.js"
import * as ElementwiseInto from "../kernels/ElementwiseInto.js"
import * as Kernels from "../kernels/Kernels.js"
import { reference } from "../kernels/Reference.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"
import type { DeviceArray, DeviceKernels, DeviceRuntime } from "./DeviceRuntime.js"
import { downloaded } from "./DeviceRuntime.js"
import { runtimeOf } from "./Runtimes.js"

/**
 * An op's storage: a host typed array or a device array.
 * @category models
 */
export type Buffer = DType.Storage | DeviceArray

/**
 * Where an op computes.
 * @category models
 */
export interface Place {
  readonly device: Device.Device
  /** The runtime of a device place; undefined on the host. */
  readonly runtime: DeviceRuntime | undefined
  /** The kernels for `dtype` here. */
  readonly kernels: (dtype: DType.DType) => Kernels.Kernels<Buffer, Buffer>
  /** The element-wise kernels here (ElementwiseInto's contract). */
  readonly elementwise: ElementwiseInto.ElementwiseKernels<Buffer>
  /** The values of `t` here, to read. */
  readonly operand: (t: Tensor.Tensor) => Buffer
  /** New storage here, uninitialised. */
  readonly allocate: (dtype: DType.DType, length: number) => Buffer
  /** New storage here, zeros. */
  readonly zeros: (dtype: DType.DType, length: number) => Buffer
  /** dst = src here (same length), converted to dst's dtype as a typed array's `set` does. */
  readonly copy: (src: Buffer, dst: Buffer) => void
  /** Elements [srcOffset, +length) of src into [dstOffset, +length) of dst, one dtype (DeviceKernels.copyRange's contract). */
  readonly copyRange: (src: Buffer, srcOffset: number, dst: Buffer, dstOffset: number, length: number) => void
}

/**
 * The host.
 * @category constructors
 */
export const host: Place = {
  device: Device.cpu,
  runtime: undefined,
  // The host kernels take host storage only; a host place hands them nothing else.
  kernels: (dtype) => Kernels.forDType(dtype, reference) as unknown as Kernels.Kernels<Buffer, Buffer>,
  elementwise: ElementwiseInto.onHost as ElementwiseInto.ElementwiseKernels<Buffer>,
  operand: (t) => t.data,
  allocate: DType.allocateUninitialized,
  zeros: (dtype, length) => DType.allocate(dtype, length),
  copy: (src, dst) => (dst as DType.Storage).set(src as DType.Storage),
  copyRange: (src, srcOffset, dst, dstOffset, length) => (dst as DType.Storage).set((src as DType.Storage).subarray(srcOffset, srcOffset + length), dstOffset),
}

const places = new Map<string, Place>()

/** The place of a device's runtime (one per device). */
const onDevice = (runtime: DeviceRuntime): Place => {
  const key = Device.format(runtime.device)
  let p = places.get(key)
  if (p === undefined || p.runtime !== runtime) {
    const kernels = runtime.kernels as DeviceKernels as unknown as Kernels.Kernels<Buffer, Buffer>
    p = {
      device: runtime.device,
      runtime,
      kernels: () => kernels,
      elementwise: runtime.kernels as ElementwiseInto.ElementwiseKernels<Buffer>,
      operand: (t) => t.deviceArray(runtime),
      allocate: runtime.allocate,
      zeros: runtime.zeros,
      copy: runtime.kernels.copy as Place["copy"],
      copyRange: runtime.kernels.copyRange as Place["copyRange"],
    }
    places.set(key, p)
  }
  return p
}

/**
 * Where an op on `inputs` computes: their device (they must share it), the host when none is given.
 * @category constructors
 */
export const of = (op: string, ...inputs: ReadonlyArray<Tensor.Tensor>): Place => {
  const first = inputs[0]
  if (first === undefined) return host
  for (const t of inputs) {
    if (!Device.same(t.device, first.device))
      throw TensorError.shape(op, `inputs are on ${Device.format(first.device)} and ${Device.format(t.device)}; move them with Transfer.to first`)
  }
  return Device.isAccelerator(first.device) ? onDevice(runtimeOf(first.device)) : host
}

/**
 * A buffer's values in host storage: host storage as it is, a device array downloaded into new
 * storage.
 * @category mapping
 */
export const hostValues = (buffer: Buffer): DType.Storage => (ArrayBuffer.isView(buffer) ? buffer : downloaded(buffer))

/**
 * A tensor (no tape) over a buffer: host storage or a device array of `device`.
 * @category constructors
 */
export const tensor = (buffer: Buffer, shape: ReadonlyArray<number>, device: Device.Device): Tensor.Tensor =>
  ArrayBuffer.isView(buffer) ? new Tensor.Tensor({ shape, data: buffer, device }) : new Tensor.Tensor({ shape, resident: buffer, device })

/**
 * The products of a bf16 run here (Bf16Matmul): the host's choice of GEMM, or the device's.
 * @category mapping
 */
export const bf16Products = (place: Place): Kernels.Products<Buffer> =>
  (place.runtime === undefined ? Bf16Matmul.hostProducts() : place.runtime.kernels.bf16Products) as Kernels.Products<Buffer>

/**
 * The output gradient a bf16 product's backward products take here: rounded to bf16 values (on a
 * device, into a new array; on the host Bf16Matmul.backwardOperands, which leaves the rounding to
 * the bf16 GEMM when that runs: it rounds as it packs).
 * @category mapping
 */
export const bf16Gradient = (place: Place, grad: Tensor.Tensor): Buffer => {
  const runtime = place.runtime
  if (runtime === undefined) return Bf16Matmul.backwardOperands(grad.data as Float32Array).gradient
  const src = grad.deviceArray(runtime)
  const out = runtime.allocate("float32", src.length)
  runtime.kernels.roundBf16(src, out)
  return out
}
