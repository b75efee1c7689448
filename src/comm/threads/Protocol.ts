/**
 * Protocol: the messages of a threads job: between the main thread (the supervisor) and the
 * rank workers, and between two workers on their direct channel.
 *
 * The main thread starts the workers, hands each group's control block out once (ControlBlock)
 * and ends the job; it is never on the path of a collective or a p2p message. Collectives meet
 * in shared memory (ControlBlock, Doorbell). Workers talk to each other over one MessagePort per
 * pair: shared buffers they will read (Registry) and p2p messages, whose ArrayBuffers move with
 * a transfer list (ownership moves, no copy). Every message carries the job id (so that a pooled
 * worker ignores leftovers of an earlier job) and the rank it is for or from: a worker may host
 * several ranks of a job (ThreadsJob's `workers`).
 */
import type { MessagePort } from "node:worker_threads"
import type * as CommError from "../CommError.js"
import type * as DType from "../../tensor/DType.js"
import type * as Device from "../../tensor/Device.js"

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
  | { readonly type: "config"; readonly field: string; readonly value: unknown; readonly reason: string; readonly fix: string }
  | { readonly type: "error"; readonly name: string; readonly message: string; readonly stack: string | undefined; readonly props: Record<string, unknown> }
  | { readonly type: "value"; readonly value: unknown }

/**
 * Worker to main.
 * @category models
 */
export type ToMain =
  /** The module is imported and the export is a function: ready to go. */
  | { readonly t: "loaded"; readonly job: number; readonly rank: number }
  /** The control block of a group, please (the first time this rank uses the group). */
  | { readonly t: "group"; readonly job: number; readonly rank: number; readonly key: string; readonly size: number }
  | { readonly t: "done"; readonly job: number; readonly rank: number; readonly ok: true; readonly value: unknown }
  | { readonly t: "done"; readonly job: number; readonly rank: number; readonly ok: false; readonly failure: WireFailure }
  /** The rank has failed its pending ops and its program has stopped. */
  | { readonly t: "stopped"; readonly job: number; readonly rank: number }
  /** Something the rank's program tells the main thread while it runs (cloneable). */
  | { readonly t: "event"; readonly job: number; readonly rank: number; readonly event: unknown }
  /** The worker is exiting (process.exit) from this rank's program, while it ran. */
  | { readonly t: "exiting"; readonly job: number; readonly rank: number; readonly code: number }

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
      /** Whether the rank polls its doorbell before it sleeps (it has a core of its own). */
      readonly spin: boolean
      /** The rank's place among the ranks its worker hosts (which chunk pool it uses). */
      readonly slot: number
      /** The worker of every rank (Doorbell). */
      readonly hosts: ReadonlyArray<number>
      /** The job's doorbells (Doorbell). */
      readonly doorbells: SharedArrayBuffer
      /** The direct channel to each other rank (undefined at this rank's own index). */
      readonly peers: ReadonlyArray<MessagePort | undefined>
    }
  /** Every rank has loaded: run the program. */
  | { readonly t: "go"; readonly job: number; readonly rank: number }
  /** A group's control block (the same buffer for every member). */
  | { readonly t: "group"; readonly job: number; readonly rank: number; readonly key: string; readonly block: SharedArrayBuffer }
  | { readonly t: "close"; readonly job: number; readonly rank: number; readonly why: string }

/**
 * Worker to worker, on their direct channel.
 * @category models
 */
export type PeerMessage =
  /** A shared buffer the sender's parts will name by `id`. */
  | { readonly t: "share"; readonly id: number; readonly buffer: SharedArrayBuffer }
  /** The sender dropped buffer `id`: forget it. */
  | { readonly t: "drop"; readonly id: number }
  /** A p2p message; `buffer` is transferred. */
  | {
      readonly t: "p2p"
      readonly tag: string
      readonly dtype: DType.DType
      readonly shape: ReadonlyArray<number>
      readonly device: Device.Device
      readonly buffer: ArrayBuffer
    }

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
