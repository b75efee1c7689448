/**
 * Device: where a tensor's storage lives. `cpu` is host memory; `cuda:N` is GPU N's memory
 * through the CUDA addon; `sim:N` is a simulated device: separate host buffers behind the same
 * device interface (device/DeviceRuntime.ts), so that the device paths of the ops, the copies
 * between host and device and when they happen are tested on machines without a GPU.
 */

/**
 * A device.
 * @category models
 */
export type Device = { readonly kind: "cpu" } | { readonly kind: "cuda"; readonly index: number } | { readonly kind: "sim"; readonly index: number }

/**
 * The CPU.
 * @category constructors
 */
export const cpu: Device = { kind: "cpu" }

/**
 * GPU `index` (CUDA).
 * @category constructors
 */
export const cuda = (index = 0): Device => ({ kind: "cuda", index })

/**
 * Simulated device `index` (host memory behind the device interface; for tests).
 * @category constructors
 */
export const sim = (index = 0): Device => ({ kind: "sim", index })

/**
 * A device for messages: `cpu`, `cuda:0`, `sim:0`.
 * @category mapping
 */
export const format = (d: Device): string => (d.kind === "cpu" ? "cpu" : `${d.kind}:${d.index}`)

/**
 * Whether two devices are the same one.
 * @category guards
 */
export const same = (a: Device, b: Device): boolean => a.kind === b.kind && (a.kind === "cpu" || a.index === (b as { readonly index: number }).index)

/**
 * Whether `d` is a device other than the host (its tensors may live in device memory).
 * @category guards
 */
export const isAccelerator = (d: Device): d is Exclude<Device, { readonly kind: "cpu" }> => d.kind !== "cpu"

/**
 * A kind of device.
 * @category models
 */
export type Kind = Device["kind"]

/**
 * The device of `kind` that rank `rank` computes on: the host; sim:rank; cuda:0, the one GPU of
 * the rank's process (CudaRuntime).
 * @category constructors
 */
export const ofRank = (kind: Kind, rank: number): Device => (kind === "cpu" ? cpu : kind === "sim" ? sim(rank) : cuda(0))
