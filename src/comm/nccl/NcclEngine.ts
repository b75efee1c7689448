/**
 * NcclEngine: the NCCL backend's data path, a DataEngine of the MPI transport (the signatures of
 * every collective are exchanged and judged over MPI first, so a mismatch fails on the host,
 * naming group, op and ranks, before anything is queued on a GPU; the watchdog stays MPI's).
 * P2p messages between device-resident tensors go over NCCL links (NcclLinks), announced over
 * MPI; the others stay MPI frames.
 *
 * Each group gets its own NCCL communicator on first use, made by its members only: member 0
 * makes the id (ncclGetUniqueId), broadcasts it over the group's MPI communicator, and every
 * member joins with ncclCommInitRank on a thread of its own (nccl_binding.cc). Groups appear
 * lazily, known only to their members, so a split of a parent communicator (ncclCommSplit,
 * collective over every rank of the parent) cannot make them. Each group also gets its own
 * stream number (1, 2, ... over the process's jobs; 0 is the compute stream): its collectives
 * run there in issue order, and groups overlap.
 *
 * A collective's calls are NcclPlan's; they are queued when the communicator is ready and
 * after the group's previous collective was queued, and the result settles when the stream
 * has run them (no blocking wait on the JS thread). Sums run in NCCL's order, so they may round
 * differently from the core's member-order sum; every other result is bit-equal.
 *
 * A tensor whose values are in device memory (a rank computing on `cuda`, or on `sim` in tests)
 * is sent from there and its result received into a new device array of the same runtime
 * (DeviceRuntime.inPlace): nothing crosses to the host, the result tensor is resident. Host
 * tensors, a preallocated output (`out`, written on the host) and a CUDA array with the host
 * stand-in (which cannot reach GPU memory) take the host path.
 */
import * as MpiAddon from "../../native/MpiAddon.js"
import type * as Nccl from "../../native/Nccl.js"
import type { DeviceArray, InPlace } from "../../tensor/device/DeviceRuntime.js"
import { runtimeOf } from "../../tensor/device/Runtimes.js"
import * as Device from "../../tensor/Device.js"
import * as DType from "../../tensor/DType.js"
import type * as Collective from "../Collective.js"
import type { Request } from "../Communicator.js"
import type * as Group from "../Group.js"
import type { DataEngine } from "../mpi/DataEngine.js"
import type { Session } from "../mpi/MpiSession.js"
import * as NcclChain from "./NcclChain.js"
import * as NcclLinks from "./NcclLinks.js"
import * as NcclPlan from "./NcclPlan.js"

/**
 * NCCL opened in this process: the native face, what was loaded, and the rank's GPU (-1 with
 * the host stand-in).
 * @category models
 */
export interface Opened {
  readonly native: Nccl.Native
  readonly loaded: Nccl.Loaded
  readonly device: number
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Where a run's buffers are: the host's arrays, or a device's arrays taken in place. */
type Buffers = { readonly send: Nccl.RunBuffer; readonly recv: Nccl.RunBuffer; readonly result: Collective.Values }

/** What NCCL takes for a device array in place, when this NCCL can reach it (a host array is staged through device memory). */
const reachable = (place: InPlace, hostMemory: boolean): Nccl.RunBuffer | undefined => {
  if (place.memory === "host") return place.data as Float32Array | Float64Array
  return hostMemory ? undefined : (place.handle as Nccl.RunBuffer)
}

/**
 * A run's buffers: a resident tensor's device array and a new one of its runtime for the result
 * (see the file header), else host storage.
 */
const buffersOf = (request: Request, recvLength: number, hostMemory: boolean): Buffers => {
  const t = request.tensor
  if (request.op === "barrier") return { send: new Float32Array(1), recv: new Float32Array(1), result: DType.allocate(t.dtype, 0) }
  if (t.isResident && request.out === undefined && Device.isAccelerator(t.device)) {
    const runtime = runtimeOf(t.device)
    const values = t.values() as DeviceArray
    const send = reachable(runtime.inPlace(values), hostMemory)
    if (send !== undefined) {
      const result = runtime.allocate(t.dtype, recvLength)
      const recv = reachable(runtime.inPlace(result), hostMemory)
      if (recv !== undefined) return { send, recv, result }
    }
  }
  const recv = request.out?.data ?? DType.allocate(t.dtype, recvLength)
  return { send: t.readHost(), recv, result: recv }
}

// Stream numbers belong to the process (the addon keeps a CUDA stream per number for its life):
// every job's groups and links take new ones, so no job queues behind what an earlier, failed
// job left on a stream.
let nextStream = 1

/**
 * The engine of one job on this process's rank.
 * @category constructors
 */
export const make = (session: Session, opened: Opened): DataEngine => {
  const { native, device } = opened
  const groups = new Map<string, NcclChain.Chain>()
  // The handle of each group whose communicator is made, for a synchronous look (diagnose).
  const handles = new Map<string, number>()
  const track = <T>(work: Promise<T>): Promise<T> => session.track(work)
  const links = NcclLinks.make(opened, { rank: session.rank, nextStream: () => nextStream++, track })

  const join = (group: Group.Group, mpiComm: number, local: number): NcclChain.Chain => {
    const id = new Uint8Array(128)
    if (local === 0) id.set(native.uniqueId())
    const shared = new Promise<void>((resolve, reject) =>
      session.op(
        (op) => session.addon.bcast(op, mpiComm, id, id.length, 0, MpiAddon.TYPE.byte),
        (error) => (error === undefined ? resolve() : reject(new Error(`the MPI broadcast of the NCCL id failed: ${error}`))),
        [id],
      ),
    )
    const made = track(shared.then(() => native.commInit(id, group.ranks.length, local, device)))
    made.then(
      (handle) => void handles.set(group.key, handle),
      () => undefined,
    )
    const state = NcclChain.make(made, nextStream++)
    groups.set(group.key, state)
    return state
  }

  const start: DataEngine["start"] = (group, mpiComm, request, parts, local, done) => {
    try {
      queue(group, mpiComm, request, parts, local, done)
    } catch (error) {
      // NCCL's id or a plan that cannot be made: this collective fails, naming why.
      done({ ok: false, error: message(error) })
    }
  }

  const queue: DataEngine["start"] = (group, mpiComm, request, parts, local, done) => {
    const state = groups.get(group.key) ?? join(group, mpiComm, local)
    const plan = NcclPlan.planFor(parts, local)
    const { shape, splits } = NcclPlan.resultShape(parts, local)
    // A barrier reduces one float32; every other op sends the tensor and receives its result.
    const { send, recv, result } = buffersOf(request, plan.recvLength, opened.loaded.hostMemory)
    const calls = NcclPlan.encode(plan.calls)
    const output: Collective.Output<Collective.Values> = { data: result, shape, ...(splits === undefined ? {} : { splits }) }
    NcclChain.enqueue(native, state, calls, send, recv, track).then(
      () => done({ ok: true, output }),
      (error: unknown) => done({ ok: false, error: message(error) }),
    )
  }

  const close = (clean: boolean): void => {
    for (const state of groups.values()) NcclChain.release(native, state, clean)
    groups.clear()
    handles.clear()
    links.close(clean)
  }

  const diagnose = (group: Group.Group): string | undefined => {
    const handle = handles.get(group.key)
    if (handle === undefined) return groups.has(group.key) ? "its communicator is not made yet (a member never joined ncclCommInitRank)" : undefined
    try {
      return native.asyncError(handle) ?? undefined
    } catch (error) {
      return message(error)
    }
  }

  return { backend: "nccl", start, diagnose, close, p2p: { send: links.send, receive: links.receive } }
}
