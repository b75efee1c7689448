/**
 * Device: where a tensor's storage lives. Only the CPU today; the field exists so that CUDA
 * tensors can arrive later without changing any caller (ops dispatch on it).
 */

/**
 * A device.
 * @category models
 */
export type Device = { readonly kind: "cpu" } | { readonly kind: "cuda"; readonly index: number }

/**
 * The CPU.
 * @category constructors
 */
export const cpu: Device = { kind: "cpu" }

/**
 * A device for messages: `cpu`, `cuda:0`.
 * @category mapping
 */
export const format = (d: Device): string => (d.kind === "cpu" ? "cpu" : `cuda:${d.index}`)
