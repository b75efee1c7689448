/**
 * ChunkedLowering: a chunked allToAllV (Chunked.ts), one that sends gathered rows (`sendRows`)
 * or one whose receiver sums its rows onto tokens (`combine`, ReceiveCombine.ts), on a
 * transport that moves only plain ones (the threads and MPI transports:
 * their members never see each other's chunk counts or tensors): the rows gathered first, then
 * the plain exchange of every member's rows, plus one local move of the blocks, before it
 * ("sent": the send buffer to member-major) or after it ("received": the result to
 * chunk-major). The
 * same rows in the same places as a transport that places the chunks while it copies
 * (Collective.outputFor), at the cost of that extra move: what the MoE dispatcher's chunk sort
 * cost before chunked exchanges.
 *
 * A tensor resident on a device (a rank computing on `cuda`, or `sim`) is gathered and reordered
 * there (DeviceKernels.gatherRows by the same row maps), and where the transport delivers the rows
 * in device memory (the NCCL backend) they are reordered and summed onto the tokens there too
 * (scatterAddRows: received rows in increasing order, ReceiveCombine's order): nothing crosses to
 * the host.
 *
 * Checks: the request's own arguments before anything moves (a bad one still enters the plain
 * exchange, with splits that no member accepts, so the others fail at once rather than time
 * out); after the exchange, the rows received from each member against the recvSplits this
 * member declared (per member: the chunks within a member's block are taken as declared).
 */
import * as Effect from "effect/Effect"
import * as Device from "../tensor/Device.js"
import { type DeviceArray, type DeviceRuntime, isDeviceArray } from "../tensor/device/DeviceRuntime.js"
import { runtimeOf } from "../tensor/device/Runtimes.js"
import * as DType from "../tensor/DType.js"
import * as StorageRecycler from "../tensor/StorageRecycler.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Chunked from "./Chunked.js"
import * as Collective from "./Collective.js"
import * as Delivered from "./Delivered.js"
import * as CommError from "./CommError.js"
import { gatherInto } from "./Kernels.js"
import type { Request } from "./Communicator.js"
import type { RankTransport } from "./Endpoint.js"
import * as Group from "./Group.js"
import * as ReceiveCombine from "./ReceiveCombine.js"

/**
 * Hands `storages` (host buffers this lowering made or received, which nothing reads after it)
 * back to the storage recycler, where the transport kept none of them: on a transport of private
 * storage the exchange let go of its inputs when it completed and its results are this rank's
 * alone (CommunicatorShape.privateStorage); a zero-copy one may still share them.
 */
const handBack = (transport: RankTransport, storages: ReadonlyArray<DType.Storage>): void => {
  if (transport.privateStorage === true) for (const s of storages) StorageRecycler.recycle(s)
}

const error = (reason: "BadInput" | "Mismatch", group: Group.Group, seq: number, rank: number, ranks: ReadonlyArray<number>, detail: string) =>
  CommError.make({ reason, group: Group.format(group), op: "allToAllV", seq, rank, ranks: [...ranks], detail })

/**
 * Enters a chunked allToAllV on `transport` as a plain one and a local move of the blocks;
 * `signature` is what the rank declares of `request` (Endpoint.signatureOf).
 * @category combinators
 */
export const enter = (
  transport: RankTransport,
  group: Group.Group,
  seq: number,
  request: Request,
  signature: Collective.Signature,
): Effect.Effect<Collective.Output<Collective.Values>, CommError.CommError> => {
  const { rank } = transport
  const g = group.ranks.length
  const source = request.tensor
  const chunks = signature.chunks ?? 1
  const inner = Tensor.sizeOf(source.shape.slice(1))
  const rows = request.sendRows
  const sourceRows = source.shape[0] ?? 0
  const outside = rows === undefined ? -1 : rows.findIndex((r) => !Number.isInteger(r) || r < 0 || r >= sourceRows)
  const own =
    Collective.checkOwn(signature, g) ?? (rows === undefined || outside < 0 ? undefined : `sendRows[${outside}] = ${rows[outside]} is not a row of the tensor's ${sourceRows}`)
  if (own !== undefined) {
    const refused = transport.enter(group, seq, { op: "allToAllV", tensor: source, sendSplits: [] })
    return Effect.flatMap(Effect.exit(refused), () => Effect.fail(error("BadInput", group, seq, rank, [rank], `rank ${rank}: ${own}`)))
  }
  // A source resident on a device is gathered and reordered there (see the header).
  const device = source.isResident && Device.isAccelerator(source.device) ? runtimeOf(source.device) : undefined
  const gathered = (from: Tensor.Tensor, index: Int32Array, shape: ReadonlyArray<number>): Tensor.Tensor => {
    const rt = device as DeviceRuntime
    const out = rt.allocate(from.dtype, index.length * inner)
    rt.kernels.gatherRows(from.deviceArray(rt), index, out, inner)
    return new Tensor.Tensor({ shape, resident: out, device: from.device })
  }
  // Host buffers made here that only this exchange reads: handed back once it completed, where
  // the transport kept none of them (privateStorage; see `handBack`).
  const stagedHere: Array<DType.Storage> = []
  // The send buffer: the rows sendRows names, gathered here.
  let t = source
  if (rows !== undefined && device !== undefined) t = gathered(source, Int32Array.from(rows), [rows.length, ...source.shape.slice(1)])
  else if (rows !== undefined) {
    const staged = DType.allocateUninitialized(source.dtype, rows.length * inner)
    gatherInto(staged, 0, source.readHost(), rows, inner)
    stagedHere.push(staged)
    t = Tensor.fromStorage(staged, [rows.length, ...source.shape.slice(1)], { device: source.device })
  }
  const combine = signature.combine
  if (chunks === 1 && combine === undefined) {
    const sendSplits = signature.sendSplits ?? []
    const plain: Request = request.out === undefined ? { op: "allToAllV", tensor: t, sendSplits } : { op: "allToAllV", tensor: t, sendSplits, out: request.out }
    return Effect.map(transport.enter(group, seq, plain), (o) => {
      handBack(transport, stagedHere)
      return o
    })
  }
  const sendSplits = signature.sendSplits ?? []
  const recvSplits = signature.recvSplits ?? []
  const expected = Chunked.perMember(recvSplits, g, chunks)
  const total = expected.reduce((a, b) => a + b, 0)
  const length = combine === undefined ? total * inner : combine.tokens * inner
  const buffer = request.out === undefined ? undefined : Collective.bufferProblem(rank, { length: request.out.size, dtype: request.out.dtype }, length, t.dtype)
  if (buffer !== undefined) return Effect.fail(error("BadInput", group, seq, rank, [rank], buffer))
  const sent = chunks > 1 && signature.chunkOrder === "sent"
  // The received blocks are already in result order: one chunk, or member-major results.
  const placed = chunks === 1 || sent
  let tensor = t
  if (sent && device !== undefined) tensor = gathered(t, Chunked.blockRows(sendSplits, g, chunks, "chunk-major", "member-major"), t.shape)
  else if (sent) {
    const staged = DType.allocateUninitialized(t.dtype, t.size)
    Chunked.moveBlocks(t.readHost(), staged, sendSplits, g, chunks, inner, "chunk-major", "member-major")
    stagedHere.push(staged)
    tensor = Tensor.fromStorage(staged, t.shape, { device: t.device })
  }
  // The rows expected from each member go along (recvSplits): an engine may plan the receives
  // from them before the members' signatures are in (HostChecks).
  const plainSplits = Chunked.perMember(sendSplits, g, chunks)
  const plain: Request =
    placed && combine === undefined && request.out !== undefined
      ? { op: "allToAllV", tensor, sendSplits: plainSplits, recvSplits: expected, out: request.out }
      : { op: "allToAllV", tensor, sendSplits: plainSplits, recvSplits: expected }
  /** The received rows, left in device memory by the transport, reordered and summed there. */
  const onDevice = (received: DeviceArray, shape: ReadonlyArray<number>): Collective.Output<Collective.Values> => {
    const rt = received.runtime
    let ordered = received
    if (!placed) {
      ordered = rt.allocate(t.dtype, total * inner)
      rt.kernels.gatherRows(received, Chunked.blockRows(recvSplits, g, chunks, "member-major", "chunk-major"), ordered, inner)
    }
    if (combine === undefined) return { data: ordered, shape, splits: recvSplits }
    let summed: DeviceArray
    if (combine.weights === undefined) {
      summed = rt.zeros(t.dtype, combine.tokens * inner)
      rt.kernels.scatterAddRows(ordered, combine.index, summed, inner)
    } else if (t.dtype === "float32") {
      // The weighted sum: the unpermute kernel with weights (every element written), the
      // weights (one float a row) uploaded, narrowed to float32 only where they are not.
      const weights = combine.weights instanceof Float32Array ? combine.weights : Float32Array.from(combine.weights)
      summed = rt.allocate(t.dtype, combine.tokens * inner)
      rt.kernels.combineRows(ordered, inner, combine.index, rt.upload(weights), combine.tokens, inner, summed)
    } else {
      // Other dtypes have no weighted device kernel: summed on the host.
      const rows = DType.allocateUninitialized(t.dtype, total * inner)
      rt.download(ordered, rows)
      summed = rt.upload(ReceiveCombine.sumOnto(combine, ReceiveCombine.contiguous(rows, total), inner, t.dtype))
    }
    return { data: summed, shape: [combine.tokens, ...t.shape.slice(1)], splits: recvSplits }
  }
  return Effect.flatMap(transport.enter(group, seq, plain), (o) => {
    handBack(transport, stagedHere)
    const got = o.splits ?? []
    const wrong = expected.findIndex((n, s) => got[s] !== n)
    if (wrong >= 0) {
      const from = group.ranks[wrong] as number
      const detail = `rank ${rank} expects ${expected[wrong]} rows from rank ${from} (its recvSplits) but rank ${from} sends it ${got[wrong]}`
      return Effect.fail(error("Mismatch", group, seq, rank, [rank, from], detail))
    }
    if (placed && combine === undefined) return Effect.succeed({ data: o.data, shape: o.shape, splits: recvSplits })
    if (isDeviceArray(o.data) && request.out === undefined) return Effect.succeed(onDevice(o.data, o.shape))
    // The moves and sums below are the host's (rows an engine left on a device come down first).
    let rows = Delivered.onHost(o.data)
    // The transport's host result, consumed by the reorder or the sum below.
    const delivered = isDeviceArray(o.data) ? [] : [rows]
    if (!placed) {
      const received = rows
      rows = combine === undefined ? (request.out?.data ?? DType.allocateUninitialized(t.dtype, total * inner)) : DType.allocateUninitialized(t.dtype, total * inner)
      Chunked.moveBlocks(received, rows, recvSplits, g, chunks, inner, "member-major", "chunk-major")
      handBack(transport, delivered)
    }
    if (combine === undefined) return Effect.succeed({ data: rows, shape: o.shape, splits: recvSplits })
    // Summed onto the tokens here: the transport only moved the rows.
    const summed = ReceiveCombine.sumOnto(combine, ReceiveCombine.contiguous(rows, total), inner, t.dtype, request.out?.data)
    // The rows summed: the transport's result where placed, else the reorder's made above.
    handBack(transport, placed ? delivered : [rows])
    return Effect.succeed({ data: summed, shape: [combine.tokens, ...t.shape.slice(1)], splits: recvSplits })
  })
}
