/**
 * Transfer: explicit copies between the host and a device, as ops on the tape (the gradient goes
 * back to where the input lives), PyTorch's `tensor.to(device)`.
 *
 * To a device the values are uploaded at once (one copy, counted in the runtime's transfers); to
 * the host they are downloaded into new storage. Between two devices they pass through the host.
 * A tensor already on `device` is returned as it is.
 */
import * as Autograd from "../Autograd.js"
import * as Device from "../Device.js"
import { runtimeOf } from "../device/Runtimes.js"
import * as DType from "../DType.js"
import type * as Tensor from "../Tensor.js"

/** `t`'s values on `device`, as a device array or new host storage. */
const valuesOn = (t: Tensor.Tensor, device: Device.Device) => {
  if (!Device.isAccelerator(device)) return DType.copyOf(t.readHost())
  const runtime = runtimeOf(device)
  return runtime.upload(t.readHost())
}

/**
 * `t` on `device` (a copy; differentiable).
 * @category combinators
 */
export const to = (t: Tensor.Tensor, device: Device.Device): Tensor.Tensor => {
  if (Device.same(t.device, device)) return t
  const from = t.device
  return Autograd.resultOn(device, "to", [t], valuesOn(t, device), t.shape, (grad) => [to(grad, from)])
}
