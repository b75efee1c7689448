/**
 * NcclPlan: the NCCL calls that carry out one member's part of a collective (issue 15's NCCL
 * backend marshals these; this file is the pure part, tested against Collective.outputFor on
 * machines without a GPU).
 *
 * From the agreed signatures of every member (group-local order) and the member's index j, the
 * plan lists the calls in the order they are issued on the group's stream, with offsets and
 * counts in elements of the send and receive buffers:
 *   allReduce        ncclAllReduce(count, sum | max)
 *   allGather        ncclAllGather(sendcount)                      (every member's shape equal)
 *   allGatherV       ncclGroupStart, ncclSend of the own rows to every other member, ncclRecv of
 *                    each other member's rows at its offset, ncclGroupEnd; the own rows by a
 *                    device copy (NCCL has no all-gather-v)
 *   reduceScatter    ncclReduceScatter(recvcount)                   (equal blocks)
 *   reduceScatterV   ncclGroupStart, one ncclReduce per member i rooted at i over block i,
 *                    ncclGroupEnd (NCCL has no reduce-scatter-v); member j's block lands in its
 *                    receive buffer, the others' results are discarded (recv undefined)
 *   allToAllV        ncclGroupStart, ncclSend / ncclRecv per other member with a nonzero count,
 *                    ncclGroupEnd; the rows a member keeps by a device copy
 *   broadcast        ncclBroadcast(count, root)
 *   barrier          ncclAllReduce of one float32 (the usual NCCL barrier)
 * Sums run in NCCL's order (ring or tree), not the core's fixed group order, so results equal
 * the core's up to rounding; the agreement checks stay on the host (a debug flag exchanges op
 * and size first).
 */
import type * as DType from "../../tensor/DType.js"
import type * as Collective from "../Collective.js"

/**
 * ncclDataType_t values (nccl.h): pleat's float32 and float64 storage. bf16 runs keep float32
 * storage (emulated), so ncclBfloat16 (9) is for the device path's real bf16 tensors.
 * @category constants
 */
export const DATA_TYPE = { float32: 7, float64: 8, bfloat16: 9 } as const

/**
 * ncclRedOp_t values (nccl.h).
 * @category constants
 */
export const RED_OP = { sum: 0, max: 2 } as const

/**
 * One call on the group's stream; offsets and counts in elements, `peer` / `root` group-local.
 * @category models
 */
export type Call =
  | { readonly fn: "ncclGroupStart" }
  | { readonly fn: "ncclGroupEnd" }
  | { readonly fn: "ncclAllReduce"; readonly count: number; readonly op: number }
  | { readonly fn: "ncclAllGather"; readonly sendcount: number }
  | { readonly fn: "ncclReduceScatter"; readonly recvcount: number; readonly op: number }
  | { readonly fn: "ncclReduce"; readonly sendOffset: number; readonly count: number; readonly op: number; readonly root: number }
  | { readonly fn: "ncclBroadcast"; readonly count: number; readonly root: number }
  | { readonly fn: "ncclSend"; readonly sendOffset: number; readonly count: number; readonly peer: number }
  | { readonly fn: "ncclRecv"; readonly recvOffset: number; readonly count: number; readonly peer: number }
  | { readonly fn: "copy"; readonly sendOffset: number; readonly recvOffset: number; readonly count: number }

/**
 * A member's plan: its calls, the datatype, and how many elements its receive buffer holds.
 * @category models
 */
export interface Plan {
  readonly datatype: number
  readonly recvLength: number
  readonly calls: ReadonlyArray<Call>
}

const rows = (shape: ReadonlyArray<number>): number => shape[0] ?? 1
const inner = (shape: ReadonlyArray<number>): number => shape.slice(1).reduce((a, b) => a * b, 1)
const size = (shape: ReadonlyArray<number>): number => rows(shape) * inner(shape)
const offsets = (counts: ReadonlyArray<number>): Array<number> => counts.map((_, i) => counts.slice(0, i).reduce((a, b) => a + b, 0))
const grouped = (calls: ReadonlyArray<Call>): ReadonlyArray<Call> => [{ fn: "ncclGroupStart" }, ...calls, { fn: "ncclGroupEnd" }]

/**
 * The plan of group-local member `j` from every member's agreed signature.
 * @category mapping
 */
export const planFor = (ss: ReadonlyArray<Collective.Signature>, j: number): Plan => {
  const me = ss[j] as Collective.Signature
  const datatype = DATA_TYPE[me.dtype as DType.DType]
  const g = ss.length
  const width = inner(me.shape)
  const op = RED_OP[me.reduce ?? "sum"]
  const plan = (recvLength: number, calls: ReadonlyArray<Call>): Plan => ({ datatype, recvLength, calls })
  switch (me.op) {
    case "barrier":
      return { datatype: DATA_TYPE.float32, recvLength: 1, calls: [{ fn: "ncclAllReduce", count: 1, op: RED_OP.sum }] }
    case "allReduce":
      return plan(size(me.shape), [{ fn: "ncclAllReduce", count: size(me.shape), op }])
    case "allGather":
      return plan(g * size(me.shape), [{ fn: "ncclAllGather", sendcount: size(me.shape) }])
    case "broadcast": {
      const root = me.root ?? 0
      return plan(size((ss[root] as Collective.Signature).shape), [{ fn: "ncclBroadcast", count: size((ss[root] as Collective.Signature).shape), root }])
    }
    case "reduceScatter":
      return plan(size(me.shape) / g, [{ fn: "ncclReduceScatter", recvcount: size(me.shape) / g, op }])
    case "reduceScatterV": {
      const counts = (me.counts ?? []).map((c) => c * width)
      const at = offsets(counts)
      return plan(counts[j] as number, grouped(counts.map((count, i) => ({ fn: "ncclReduce" as const, sendOffset: at[i] as number, count, op, root: i }))))
    }
    case "allGatherV": {
      const counts = ss.map((s) => size(s.shape))
      const at = offsets(counts)
      const mine = counts[j] as number
      const calls: Array<Call> = []
      for (let p = 0; p < g; p++) {
        if (p === j) continue
        if ((counts[p] as number) > 0) calls.push({ fn: "ncclRecv", recvOffset: at[p] as number, count: counts[p] as number, peer: p })
        if (mine > 0) calls.push({ fn: "ncclSend", sendOffset: 0, count: mine, peer: p })
      }
      const own: ReadonlyArray<Call> = mine > 0 ? [{ fn: "copy", sendOffset: 0, recvOffset: at[j] as number, count: mine }] : []
      return plan(
        counts.reduce((a, b) => a + b, 0),
        [...(calls.length > 0 ? grouped(calls) : []), ...own],
      )
    }
    case "allToAllV": {
      const send = (me.sendSplits ?? []).map((r) => r * width)
      const recv = ss.map((s) => ((s.sendSplits ?? [])[j] as number) * width)
      const sendAt = offsets(send)
      const recvAt = offsets(recv)
      const calls: Array<Call> = []
      for (let p = 0; p < g; p++) {
        if (p === j) continue
        if ((send[p] as number) > 0) calls.push({ fn: "ncclSend", sendOffset: sendAt[p] as number, count: send[p] as number, peer: p })
        if ((recv[p] as number) > 0) calls.push({ fn: "ncclRecv", recvOffset: recvAt[p] as number, count: recv[p] as number, peer: p })
      }
      const kept = send[j] as number
      const own: ReadonlyArray<Call> = kept > 0 ? [{ fn: "copy", sendOffset: sendAt[j] as number, recvOffset: recvAt[j] as number, count: kept }] : []
      return plan(
        recv.reduce((a, b) => a + b, 0),
        [...(calls.length > 0 ? grouped(calls) : []), ...own],
      )
    }
  }
}

/** The call codes of the native plan (cuda/src/nccl/nccl_plan.h's Fn, in its order). */
const CALL_CODE = {
  ncclGroupStart: 0,
  ncclGroupEnd: 1,
  ncclAllReduce: 2,
  ncclAllGather: 3,
  ncclReduceScatter: 4,
  ncclReduce: 5,
  ncclBroadcast: 6,
  ncclSend: 7,
  ncclRecv: 8,
  copy: 9,
} as const

/** A call's four fields, in the native row's order (nccl_plan.h). */
const fields = (c: Call): readonly [number, number, number, number] => {
  switch (c.fn) {
    case "ncclGroupStart":
    case "ncclGroupEnd":
      return [0, 0, 0, 0]
    case "ncclAllReduce":
      return [c.count, c.op, 0, 0]
    case "ncclAllGather":
      return [c.sendcount, 0, 0, 0]
    case "ncclReduceScatter":
      return [c.recvcount, c.op, 0, 0]
    case "ncclReduce":
      return [c.sendOffset, c.count, c.op, c.root]
    case "ncclBroadcast":
      return [c.count, c.root, 0, 0]
    case "ncclSend":
      return [c.sendOffset, c.count, c.peer, 0]
    case "ncclRecv":
      return [c.recvOffset, c.count, c.peer, 0]
    case "copy":
      return [c.sendOffset, c.recvOffset, c.count, 0]
  }
}

/**
 * A plan's calls as the native side reads them: rows of [code, a, b, c, d].
 * @category mapping
 */
export const encode = (calls: ReadonlyArray<Call>): Float64Array => {
  const out = new Float64Array(calls.length * 5)
  calls.forEach((c, i) => {
    out[i * 5] = CALL_CODE[c.fn]
    out.set(fields(c), i * 5 + 1)
  })
  return out
}

/**
 * The shape of member `j`'s result (and the rows from each member, for allGather(V) and
 * allToAllV), as Collective.outputFor gives it, from the agreed signatures.
 * @category mapping
 */
export const resultShape = (ss: ReadonlyArray<Collective.Signature>, j: number): { readonly shape: ReadonlyArray<number>; readonly splits?: ReadonlyArray<number> } => {
  const me = ss[j] as Collective.Signature
  const tail = me.shape.slice(1)
  switch (me.op) {
    case "barrier":
      return { shape: [0] }
    case "allReduce":
      return { shape: me.shape }
    case "broadcast":
      return { shape: (ss[me.root ?? 0] as Collective.Signature).shape }
    case "allGather":
    case "allGatherV": {
      const splits = ss.map((s) => rows(s.shape))
      return { shape: [splits.reduce((a, b) => a + b, 0), ...tail], splits }
    }
    case "reduceScatter":
      return { shape: [rows(me.shape) / ss.length, ...tail] }
    case "reduceScatterV":
      return { shape: [(me.counts ?? [])[j] as number, ...tail] }
    case "allToAllV": {
      const splits = ss.map((s) => (s.sendSplits ?? [])[j] as number)
      return { shape: [splits.reduce((a, b) => a + b, 0), ...tail], splits }
    }
  }
}
