/**
 * Delivered: a collective's result where a backend left it, host storage or (the NCCL backend on
 * device-resident tensors) a device array, as the tensor its caller gets or as host values.
 */
import type * as Device from "../tensor/Device.js"
import { downloaded, isDeviceArray } from "../tensor/device/DeviceRuntime.js"
import type * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as Collective from "./Collective.js"

/**
 * Values on the host: device arrays downloaded (one copy, counted by their runtime).
 * @category mapping
 */
export const onHost = (data: Collective.Values): DType.Storage => (isDeviceArray(data) ? downloaded(data) : data)

/**
 * A result as a tensor on `device` (its input's): resident when the engine left it in device memory.
 * @category constructors
 */
export const tensorOf = (o: Collective.Output<Collective.Values>, device: Device.Device): Tensor.Tensor =>
  isDeviceArray(o.data) ? new Tensor.Tensor({ shape: o.shape, resident: o.data, device }) : Tensor.fromStorage(o.data, o.shape, { device })
