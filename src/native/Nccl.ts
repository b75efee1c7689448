/**
 * Nccl: the native side of the NCCL backend on pleat_cuda.node (cuda/src/nccl_binding.cc):
 * NCCL loaded by path (dlopen, once per process), communicators made on libuv's pool, and one
 * member's plan of NCCL calls (comm/nccl/NcclPlan.ts) run over typed arrays or device arrays,
 * settling a Promise when its stream is done. With a GPU, device arrays (CudaArrays' handles) are
 * read and written in place, host arrays staged through device memory; with pleat's host stand-in
 * (a library of NCCL's entry points over MPI, for tests on machines without a GPU: `hostMemory`)
 * only host arrays are taken, and they are the buffers.
 */
import * as Addon from "./Addon.js"
import type { DeviceHandle } from "./CudaArrays.js"

/**
 * What a run sends from and receives into: host storage, or (with a GPU) a device array's handle.
 * Both of one kind and one element type.
 * @category models
 */
export type RunBuffer = Float32Array | Float64Array | DeviceHandle

/**
 * What a load found.
 * @category models
 */
export interface Loaded {
  readonly path: string
  /** NCCL's version code (major * 10000 + minor * 100 + patch). */
  readonly version: number
  /** The library is pleat's host stand-in: buffers are host memory, no GPU is used. */
  readonly hostMemory: boolean
}

interface NcclAddon {
  ncclLoad(path: string): Loaded
  ncclUniqueId(): Uint8Array
  ncclCommInit(id: Uint8Array, nranks: number, rank: number, device: number): Promise<number>
  ncclCommRun(handle: number, stream: number, calls: Float64Array, send: RunBuffer, recv: RunBuffer): Promise<void>
  ncclCommError(handle: number): string | null
  ncclCommFree(handle: number, abort: boolean): void
  deviceSelect(index: number): number
}

const functions = ["ncclLoad", "ncclUniqueId", "ncclCommInit", "ncclCommRun", "ncclCommError", "ncclCommFree", "deviceSelect"] as const

/**
 * The NCCL functions of pleat_cuda.node. Throws AddonLoadError when the CUDA addon is not built.
 * @category kernels
 */
export const native = () => {
  const a = Addon.load<NcclAddon>("pleat_cuda", functions)
  return {
    /** Loads NCCL from `path`; throws an Error naming the file and what it lacks. */
    load: (path: string): Loaded => a.ncclLoad(path),
    /** A new communicator's id (128 bytes), made by one member and sent to the others. */
    uniqueId: (): Uint8Array => a.ncclUniqueId(),
    /** ncclCommInitRank on libuv's pool: resolves with the communicator's handle once every member joined. `device` -1 with the host stand-in. */
    commInit: (id: Uint8Array, nranks: number, rank: number, device: number): Promise<number> => a.ncclCommInit(id, nranks, rank, device),
    /**
     * Queues a plan's calls (NcclPlan.encode) on stream `stream` now; resolves once they ran and
     * `recv` holds the result. Device arrays: the stream first waits for the compute stream's work
     * so far (what wrote `send`).
     */
    run: (handle: number, stream: number, calls: Float64Array, send: RunBuffer, recv: RunBuffer): Promise<void> => a.ncclCommRun(handle, stream, calls, send, recv),
    /** The communicator's asynchronous error (a peer failed, a network error), or null. */
    asyncError: (handle: number): string | null => a.ncclCommError(handle),
    /** ncclCommDestroy (waits for its work), or ncclCommAbort. */
    free: (handle: number, abort: boolean): void => a.ncclCommFree(handle, abort),
    /** The GPU of this process's device memory, before its first use (a rank's local GPU). */
    selectDevice: (index: number): number => a.deviceSelect(index),
  }
}

/**
 * The native face.
 * @category models
 */
export type Native = ReturnType<typeof native>
