/**
 * MpiAddon: the MPI addon `pleat_mpi.node` (cuda/src/mpi), built only where CMake found MPI.
 * Loaded on first use, so nothing that imports it fails on a machine without MPI; `status`
 * says whether it is there, and why not.
 *
 * The addon runs one native thread that owns MPI (MPI_Init_thread, every MPI call, MPI_Finalize).
 * Ops are started with an id and return at once; their completions reach the handler on the
 * JS thread: `handler(0, id, status, error)` for an op (status 0 is success) and
 * `handler(1, source, tag, bytes | error)` for a received p2p message; a `checked` op's
 * completion says whether its data op ran too (`fast`). Counts are in elements
 * of the op's type (TYPE below); the caller keeps every buffer alive until its op completes.
 */
import * as Addon from "./Addon.js"

/**
 * Element types of the ops.
 * @category configuration
 */
export const TYPE = { float32: 0, float64: 1, byte: 2 } as const

/**
 * Reductions.
 * @category configuration
 */
export const OP = { sum: 0, max: 1 } as const

type View = ArrayBufferView
type Ints = Int32Array

/**
 * What init reports: this process's rank and the world's size, the thread level MPI provides
 * (3 is MPI_THREAD_MULTIPLE) and an error when MPI_Init_thread failed.
 * @category models
 */
export interface WorldInfo {
  readonly rank: number
  readonly size: number
  readonly provided: number
  readonly error: string
}

/**
 * The raw module.
 * @category models
 */
export interface MpiAddon {
  libraryVersion(): string
  init(): WorldInfo
  setHandler(handler: (kind: number, a: number, b: number, c: string | ArrayBuffer, fast?: boolean) => void): void
  ref(on: boolean): void
  finalize(abortCode: number, graceMs: number): void
  wtime(): number
  /** How many p2p messages JS is waiting for (the engine probes more often while any). */
  want(waiting: number): void
  commCreate(id: number, comm: number, ranks: Ints, tag: number): void
  commFree(id: number, comm: number): void
  barrier(id: number, comm: number): void
  allGather(id: number, comm: number, send: View, recv: View, count: number, type: number): void
  allGatherV(id: number, comm: number, send: View, count: number, recv: View, recvCounts: Ints, recvDispls: Ints, type: number): void
  allReduce(id: number, comm: number, send: View, recv: View, count: number, type: number, op: number): void
  reduceScatter(id: number, comm: number, send: View, recv: View, recvCounts: Ints, type: number, op: number): void
  allToAllV(id: number, comm: number, send: View, sendCounts: Ints, sendDispls: Ints, recv: View, recvCounts: Ints, recvDispls: Ints, type: number): void
  bcast(id: number, comm: number, buffer: View, count: number, root: number, type: number): void
  send(id: number, dest: number, tag: number, bytes: Uint8Array): void
  /** An allgather of signature rows, then, when all agree and say fast, the data op `dataOp` (DATA_OP). */
  checked(
    id: number,
    comm: number,
    header: Float64Array,
    headers: Float64Array,
    dataOp: number,
    send: View,
    recv: View,
    count: number,
    recvCounts: Ints,
    type: number,
    op: number,
  ): void
}

/**
 * The data ops a `checked` op may run once its members agree.
 * @category configuration
 */
export const DATA_OP = { allReduce: 0, allGather: 1, reduceScatter: 2 } as const

const functions = [
  "libraryVersion",
  "init",
  "setHandler",
  "ref",
  "finalize",
  "wtime",
  "want",
  "commCreate",
  "commFree",
  "barrier",
  "allGather",
  "allGatherV",
  "allReduce",
  "reduceScatter",
  "allToAllV",
  "bcast",
  "send",
  "checked",
] as const

let cached: MpiAddon | undefined

/**
 * The loaded module (throws AddonLoadError when it is not built or does not load).
 * @category constructors
 */
export const addon = (): MpiAddon => (cached ??= Addon.load<MpiAddon>("pleat_mpi", functions))

/**
 * Whether the MPI addon is usable here, with the MPI library's version or why not.
 * @category models
 */
export type Status = { readonly available: true; readonly library: string } | { readonly available: false; readonly reason: string }

/**
 * Loads the addon if it can and says what it found (never throws).
 * @category getters
 */
export const status = (): Status => {
  if (!Addon.isBuilt("pleat_mpi")) {
    return { available: false, reason: "pleat_mpi.node is not built: CMake found no MPI at npm ci (Debian: apt-get install libopenmpi-dev openmpi-bin, then npm run build:native)" }
  }
  try {
    return { available: true, library: addon().libraryVersion() }
  } catch (error) {
    return { available: false, reason: error instanceof Error ? error.message : String(error) }
  }
}
