/**
 * Runtimes: the runtime of each device kind (`sim` always; `cuda` when the CUDA addon loads and
 * sees the GPU), the one place the tensor layer turns a Device into memory and kernels.
 */
import * as Device from "../Device.js"
import * as TensorError from "../TensorError.js"
import { cudaRuntime } from "./CudaRuntime.js"
import type { DeviceRuntime } from "./DeviceRuntime.js"
import { simulated } from "./SimulatedRuntime.js"

/**
 * The runtime of an accelerator device; a TensorError naming the device and why when it has none
 * (no CUDA addon, no GPU of that index).
 * @category constructors
 */
export const runtimeOf = (device: Device.Device): DeviceRuntime => {
  if (device.kind === "sim") return simulated(device.index)
  if (device.kind === "cuda") {
    const r = cudaRuntime(device.index)
    if ("why" in r) throw TensorError.shape("device", `${Device.format(device)} is not available: ${r.why}`)
    return r.runtime
  }
  throw TensorError.shape("device", "the host (cpu) has no device runtime")
}
