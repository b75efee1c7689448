/**
 * StepReport: what one rank reports after a training step (RankTrainer), and the part of it a
 * device adds: the bytes its runtime copied between host and device during the step, and its
 * memory at the step's end.
 */
import type * as MoeStats from "../model/MoeStats.js"
import type { DeviceRuntime, MemoryUse } from "../tensor/device/DeviceRuntime.js"
import type * as RankMemory from "./RankMemory.js"
import type * as RoutingFiles from "./RoutingFiles.js"

/**
 * What one rank reports after a step.
 * @category models
 */
export interface StepReport {
  /** This rank's share of the step loss (the shares add up to the loss over all ranks). */
  readonly loss: number
  readonly gradNorm: number
  readonly lr: number
  /** Rows per local expert of each MoE layer this rank ran (summed over micro-batches). */
  readonly expertRows: ReadonlyArray<{ readonly layer: number; readonly rows: ReadonlyArray<number> }>
  /** Rows this rank's local experts got together, per MoE layer it ran and micro-batch (ExpertOverload). */
  readonly rankRows: ReadonlyArray<{ readonly layer: number; readonly rows: ReadonlyArray<number> }>
  /** This rank's contribution to each MoE layer's aux / z losses and dropped pairs (MoeStats). */
  readonly moeStats: ReadonlyArray<MoeStats.LayerStep>
  /** Milliseconds in forward, backward, and waiting for messages. */
  readonly forwardMs: number
  readonly backwardMs: number
  readonly waitMs: number
  /** Bytes of optimizer state (AdamW moments) this rank keeps. */
  readonly optimizerStateBytes: number
  /** This rank's memory: parameters, gradients, optimizer state, peak activations (RankMemory). */
  readonly memory: RankMemory.RankMemory
  /** On an accelerator: bytes its runtime copied between host and device during the step (ranks sharing a device share the count). */
  readonly hostDeviceBytes?: number
  /**
   * On an accelerator: the copies to the host during the step that blocked the JS thread until
   * the device was done (a step's own reads wait without blocking; ops without a device path and
   * host backends' collectives still block). Ranks sharing a device share the count.
   */
  readonly hostWaits?: number
  /** On an accelerator whose runtime can tell: its memory at the end of the step (ranks sharing a device share it; the peak since the process started). */
  readonly deviceMemory?: MemoryUse
  /** With routing recording: the experts this rank's MoE layers chose for its rows (RoutingSites). */
  readonly routing?: ReadonlyArray<RoutingFiles.Entry>
}

/**
 * Where `runtime`'s counts stand (at a step's start), for `devicePart`.
 * @category getters
 */
export const deviceMark = (runtime: DeviceRuntime | undefined): { readonly bytes: number; readonly waits: number } =>
  runtime === undefined ? { bytes: 0, waits: 0 } : { bytes: runtime.transfers.uploadedBytes + runtime.transfers.downloadedBytes, waits: runtime.transfers.waits }

/**
 * The device's part of a step's report: what it copied and waited for since `before` (deviceMark
 * at the step's start) and its memory now; nothing without a device.
 * @category constructors
 */
export const devicePart = (runtime: DeviceRuntime | undefined, before: ReturnType<typeof deviceMark>): Pick<StepReport, "hostDeviceBytes" | "hostWaits" | "deviceMemory"> => {
  if (runtime === undefined) return {}
  const now = deviceMark(runtime)
  return { hostDeviceBytes: now.bytes - before.bytes, hostWaits: now.waits - before.waits, ...(runtime.memory === undefined ? {} : { deviceMemory: runtime.memory() }) }
}
