/**
 * Protocol: the messages between the main thread (supervisor and coordinator) and the rank
 * workers of a threads job.
 *
 * Only metadata travels in messages. Collective payloads stay in SharedArrayBuffers: a part
 * names the buffer, a byte offset and an element count, and posting a SAB shares its memory
 * (no copy). p2p payloads are ArrayBuffers moved with a transfer list (ownership moves, no
 * copy). Every message carries the job id so that a pooled worker ignores leftovers of an
 * earlier job.
 */
import type * as Collective from "../Collective.js"
import type * as CommError from "../CommError.js"
import type * as Group from "../Group.js"
import type * as DType from "../../tensor/DType.js"
import type * as Device from "../../tensor/Device.js"

/**
 * One member's contribution as it crosses threads: the parameters, and where its data lies.
 * @category models
 */
export interface Part extends Collective.Signature {
  /** The shared memory holding the data; undefined for empty tensors. */
  readonly buffer: SharedArrayBuffer | undefined
  /** Byte offset of the data in `buffer`. */
  readonly offset: number
  /** Number of elements. */
  readonly length: number
  /** Where the readers still to come are counted (each reader decrements it when done). */
  readonly counter: Counter | undefined
  /** The member's receive buffer, if it gave one (it stays in its thread; checked here). */
  readonly out?: { readonly length: number; readonly dtype: DType.DType }
}

/**
 * An Int32 slot in shared memory.
 * @category models
 */
export interface Counter {
  readonly buffer: SharedArrayBuffer
  readonly index: number
}

/**
 * The fields of a CommError (it is rebuilt on the other side).
 * @category models
 */
export type ErrorFields = CommError.Fields

/**
 * A failed rank's cause, flattened to cloneable data.
 * @category models
 */
export interface WireFailure {
  /** fail: an expected error; die: a defect; interrupt: the fiber was interrupted. */
  readonly kind: "fail" | "die" | "interrupt"
  readonly error: WireValue
}

/**
 * An error value, flattened.
 * @category models
 */
export type WireValue =
  | { readonly type: "comm"; readonly fields: ErrorFields }
  | { readonly type: "error"; readonly name: string; readonly message: string; readonly stack: string | undefined; readonly props: Record<string, unknown> }
  | { readonly type: "value"; readonly value: unknown }

/**
 * Worker to main.
 * @category models
 */
export type ToMain =
  /** The module is imported and the export is a function: ready to go. */
  | { readonly t: "loaded"; readonly job: number }
  | { readonly t: "arrive"; readonly job: number; readonly id: number; readonly group: Group.Group; readonly seq: number; readonly part: Part }
  | {
      readonly t: "send"
      readonly job: number
      readonly to: number
      readonly tag: string
      readonly dtype: DType.DType
      readonly shape: ReadonlyArray<number>
      readonly device: Device.Device
      readonly buffer: ArrayBuffer
    }
  | { readonly t: "done"; readonly job: number; readonly ok: true; readonly value: unknown }
  | { readonly t: "done"; readonly job: number; readonly ok: false; readonly failure: WireFailure }
  /** The worker has failed its pending ops and its program has stopped. */
  | { readonly t: "stopped"; readonly job: number }
  /** Something the rank's program tells the main thread while it runs (cloneable). */
  | { readonly t: "event"; readonly job: number; readonly event: unknown }

/**
 * Main to worker.
 * @category models
 */
export type ToWorker =
  | {
      readonly t: "start"
      readonly job: number
      readonly rank: number
      readonly world: number
      readonly module: string
      readonly export: string
      readonly args: unknown
      readonly timeoutMs: number
      readonly copy: boolean
    }
  /** Every rank has loaded: run the program. */
  | { readonly t: "go"; readonly job: number }
  | { readonly t: "complete"; readonly job: number; readonly id: number; readonly parts: ReadonlyArray<Part> }
  | { readonly t: "fail"; readonly job: number; readonly id: number; readonly error: ErrorFields }
  | {
      readonly t: "message"
      readonly job: number
      readonly from: number
      readonly tag: string
      readonly dtype: DType.DType
      readonly shape: ReadonlyArray<number>
      readonly device: Device.Device
      readonly buffer: ArrayBuffer
    }
  | { readonly t: "close"; readonly job: number; readonly why: string }

/**
 * Bytes at the start of a pooled chunk that hold its header (the data starts here, aligned for
 * float64 and for cache lines).
 * @category configuration
 */
export const headerBytes = 64

/**
 * The Int32 slot of a chunk's header that counts the readers still to come.
 * @category configuration
 */
export const readersSlot = 0

/**
 * The Int32 slot of a chunk's header that says the owner's reduced slice is in the chunk
 * (cooperative allReduce; 0 when the chunk is published).
 * @category configuration
 */
export const readySlot = 1
