/**
 * Transfer: explicit copies between the host and a device, as ops on the tape (the gradient goes
 * back to where the input lives), PyTorch's `tensor.to(device)`.
 *
 * To a device the values are uploaded at once (one copy, counted in the runtime's transfers); to
 * the host they are downloaded into new storage. Between two devices they pass through the host,
 * or go device to device where the target's runtime copies from a peer of its kind (sim).
 * A tensor already on `device` is returned as it is.
 *
 * `hostValues` is how code running as an Effect reads a device tensor on the host: the download
 * completes while the JS thread serves other fibers and callbacks, where `readHost` would block
 * it until the device is done (the rule: no blocking synchronisation on the main thread).
 */
import * as Effect from "effect/Effect"
import * as Autograd from "../Autograd.js"
import * as Device from "../Device.js"
import { type DeviceArray, downloadedAsync } from "../device/DeviceRuntime.js"
import { runtimeOf } from "../device/Runtimes.js"
import * as DType from "../DType.js"
import type * as Tensor from "../Tensor.js"

/** `t`'s values on `device`, as a device array or new host storage. */
const valuesOn = (t: Tensor.Tensor, device: Device.Device) => {
  if (!Device.isAccelerator(device)) return DType.copyOf(t.readHost())
  const runtime = runtimeOf(device)
  // From another device of the same kind that keeps its values: a peer copy where the runtime has one.
  const peer = t.isResident && t.hostStorage === undefined && t.device.kind === device.kind ? runtime.copyFromPeer : undefined
  return peer !== undefined ? peer(t.deviceArray(runtimeOf(t.device))) : runtime.upload(t.readHost())
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

/**
 * `t`'s host values (`readHost`) without blocking the JS thread: downloaded asynchronously when
 * `t` has only a device copy, at once otherwise. A failed copy is a defect (the device is broken).
 * @category combinators
 */
export const hostValues = (t: Tensor.Tensor): Effect.Effect<DType.Storage> =>
  t.hostStorage !== undefined ? Effect.succeed(t.hostStorage) : Effect.promise(() => t.readHostAsync())

/**
 * A device array's values in new host storage, without blocking the JS thread (`hostValues` for
 * arrays that no tensor holds: a kernel's statistics, sums of squares).
 * @category combinators
 */
export const arrayOnHost = (array: DeviceArray): Effect.Effect<DType.Storage> => Effect.promise(() => downloadedAsync(array))
