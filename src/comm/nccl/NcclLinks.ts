/**
 * NcclLinks: the NCCL backend's point-to-point messages between device-resident tensors (a
 * DataEngine's P2pCarrier; comm/mpi/P2p.ts announces each message over MPI).
 *
 * One link per direction between two ranks: a communicator of the two (the sender is its rank
 * 0) with its own stream, made when the sender first sends to that rank: the sender makes the
 * id and starts ncclCommInitRank, its announcement carries the id, and the receiver joins on
 * its arrival. A link only sends one way, so its stream holds only the sender's ncclSends on one
 * side and the receiver's ncclRecvs on the other, each in announcement order: NCCL matches them
 * pair by pair, and the two directions between a pair of ranks never wait for each other (one
 * communicator for both would, when both sides send first).
 *
 * The send reads the tensor's device array in place after the compute that wrote it (the run's
 * event on the compute stream); the receive writes a new array of the receiver's runtime, and
 * the delivered tensor is resident. What NCCL cannot reach (host tensors, empty ones, a CUDA
 * array with the host stand-in) is left to MPI frames.
 */
import type * as Nccl from "../../native/Nccl.js"
import type { DeviceArray, InPlace } from "../../tensor/device/DeviceRuntime.js"
import { runtimeOf } from "../../tensor/device/Runtimes.js"
import * as Device from "../../tensor/Device.js"
import * as Tensor from "../../tensor/Tensor.js"
import type { P2pCarrier } from "../mpi/DataEngine.js"
import type { Opened } from "./NcclEngine.js"
import * as NcclChain from "./NcclChain.js"
import * as NcclPlan from "./NcclPlan.js"

/**
 * The links of one job on this rank, and how to end them.
 * @category models
 */
export interface Links extends P2pCarrier {
  readonly close: (clean: boolean) => void
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"))

/**
 * What the links need of their job: this process's world rank, stream numbers among the
 * groups', and the session's tracking of work that may wait for a peer (MpiSession.track).
 * @category models
 */
export interface LinkContext {
  readonly rank: number
  readonly nextStream: () => number
  readonly track: <T>(work: Promise<T>) => Promise<T>
}

/**
 * The links of a job.
 * @category constructors
 */
export const make = (opened: Opened, context: LinkContext): Links => {
  const { native, device } = opened
  const { nextStream, track } = context
  const sending = new Map<number, NcclChain.Chain>()
  const receiving = new Map<number, NcclChain.Chain>()

  const link = (links: Map<number, NcclChain.Chain>, peer: number, id: Uint8Array, rank: 0 | 1): NcclChain.Chain => {
    const made = NcclChain.make(track(native.commInit(id, 2, rank, device)), nextStream())
    links.set(peer, made)
    return made
  }

  // A link's run takes one buffer as both send and receive, so it must be the array itself:
  // host memory with the host stand-in, device memory with NCCL (a host array given to NCCL
  // would be staged, and the unwritten receive block copied back over the sender's data).
  const inPlace = (place: InPlace): Nccl.RunBuffer | undefined =>
    opened.loaded.hostMemory
      ? place.memory === "host"
        ? (place.data as Float32Array | Float64Array)
        : undefined
      : place.memory === "cuda"
        ? (place.handle as Nccl.RunBuffer)
        : undefined

  /** One call on the link; the call touches one buffer, passed as both send and receive (of one kind). */
  const run = (l: NcclChain.Chain, call: NcclPlan.Call, buffer: Nccl.RunBuffer): Promise<void> => NcclChain.enqueue(native, l, NcclPlan.encode([call]), buffer, buffer, track)

  const send: P2pCarrier["send"] = (to, t, failed) => {
    // To itself, or what is not resident: an MPI frame (a link joins two ranks).
    if (to === context.rank || !t.isResident || !Device.isAccelerator(t.device) || t.size === 0) return undefined
    const values = t.values() as DeviceArray
    const buffer = inPlace(runtimeOf(t.device).inPlace(values))
    if (buffer === undefined) return undefined
    let head = {}
    let l = sending.get(to)
    if (l === undefined) {
      let id: Uint8Array
      try {
        id = native.uniqueId()
      } catch {
        return undefined // no link to this rank (NCCL cannot make an id now): an MPI frame carries it
      }
      l = link(sending, to, id, 0)
      head = { link: hex(id) }
    }
    // `values` stays referenced by the run until it settles.
    run(l, { fn: "ncclSend", sendOffset: 0, count: t.size, peer: 1 }, buffer).then(
      () => void values,
      (error: unknown) => failed(error instanceof Error ? error.message : String(error)),
    )
    return head
  }

  const receive: P2pCarrier["receive"] = async (from, head) => {
    let l = receiving.get(from)
    if (head.engine?.link !== undefined) {
      if (l !== undefined) throw new Error(`rank ${from} opened a second NCCL link to this rank`)
      l = link(receiving, from, unhex(head.engine.link), 1)
    }
    if (l === undefined) throw new Error(`rank ${from} announced a message on an NCCL link it never opened`)
    const runtime = runtimeOf(head.device)
    const count = Tensor.sizeOf(head.shape)
    const result = runtime.allocate(head.dtype, count)
    const buffer = inPlace(runtime.inPlace(result))
    if (buffer === undefined) throw new Error(`this rank's NCCL cannot reach ${Device.format(head.device)} memory`)
    await run(l, { fn: "ncclRecv", recvOffset: 0, count, peer: 0 }, buffer)
    return new Tensor.Tensor({ shape: head.shape, resident: result, device: head.device })
  }

  const close = (clean: boolean): void => {
    for (const l of [...sending.values(), ...receiving.values()]) NcclChain.release(native, l, clean)
    sending.clear()
    receiving.clear()
  }

  return { send, receive, close }
}
