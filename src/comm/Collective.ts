/**
 * Collective: what each member contributes to a collective, how contributions are checked
 * against each other, and the pure semantics of every collective (any backend computes the
 * same results from the same contributions).
 *
 * All collectives work on dim 0 (rows; tokens are rows): allGather concatenates rows in
 * group-local order, reduceScatter gives member i the i-th block of rows of the sum, allToAllV
 * sends sendSplits[j] rows to member j (in chunks placed as Chunked.ts says, with `chunks`).
 * Trailing dims must agree across members.
 */
import type { DeviceArray } from "../tensor/device/DeviceRuntime.js"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Chunked from "./Chunked.js"
import { combine, copyInto } from "./Kernels.js"
import * as ReceiveCombine from "./ReceiveCombine.js"

/**
 * The collective ops.
 * @category models
 */
export type Op = "allReduce" | "allGather" | "allGatherV" | "reduceScatter" | "reduceScatterV" | "allToAllV" | "broadcast" | "barrier"

/**
 * What a member declares about its contribution: the op and its parameters, never the data.
 * Every rule of the rendezvous (agreement, own-argument checks) reads only this, so a
 * transport that keeps the data elsewhere (shared memory, a device, another process) meets by
 * the same rules.
 * @category models
 */
export interface Signature {
  readonly op: Op
  readonly rank: number
  readonly dtype: DType.DType
  readonly shape: ReadonlyArray<number>
  /** allReduce / reduceScatter(V): the reduction. */
  readonly reduce?: "sum" | "max"
  /** broadcast: the group-local root. */
  readonly root?: number
  /** allToAllV: rows sent to each member, in group-local order ([member * chunks + chunk] with chunks). */
  readonly sendSplits?: ReadonlyArray<number>
  /** allToAllV: each member's block in this many chunks (default 1; Chunked.ts). */
  readonly chunks?: number
  /** Chunked allToAllV: which side holds the rows chunk-major. */
  readonly chunkOrder?: Chunked.ChunkOrder
  /** Chunked allToAllV: the rows received, [source * chunks + chunk]. */
  readonly recvSplits?: ReadonlyArray<number>
  /** reduceScatterV: rows each member receives, in group-local order. */
  readonly counts?: ReadonlyArray<number>
  /**
   * allToAllV: this member's received rows summed onto token rows (ReceiveCombine.ts); its
   * result is then [combine.tokens, ...]. Needs recvSplits. Its own: never compared.
   */
  readonly combine?: ReceiveCombine.Combine
}

/**
 * One member's contribution: its signature and its data.
 * @category models
 */
export interface Contribution extends Signature {
  readonly data: DType.Storage
  /**
   * allToAllV: the send buffer is these rows of `data`, in this order (a gather the transport
   * does as it copies); `shape` is then the send buffer's, [rows.length, ...].
   */
  readonly sendRows?: Int32Array
  /**
   * Where this member wants its result written (a receive buffer it reuses across steps, as
   * with NCCL), instead of fresh storage: fresh large buffers cost page faults on every call.
   */
  readonly out?: DType.Storage
}

/**
 * A member's contribution from its signature, data and receive buffer (if any), built field by
 * field (it runs for every member of every collective; an object spread costs several times as
 * much).
 * @category constructors
 */
export const contribution = (sig: Signature, data: DType.Storage, out?: DType.Storage, sendRows?: Int32Array): Contribution => {
  const c: { -readonly [K in keyof Contribution]: Contribution[K] } = { op: sig.op, rank: sig.rank, dtype: sig.dtype, shape: sig.shape, data }
  if (sig.reduce !== undefined) c.reduce = sig.reduce
  if (sig.root !== undefined) c.root = sig.root
  if (sig.sendSplits !== undefined) c.sendSplits = sig.sendSplits
  if (sig.chunks !== undefined) c.chunks = sig.chunks
  if (sig.chunkOrder !== undefined) c.chunkOrder = sig.chunkOrder
  if (sig.recvSplits !== undefined) c.recvSplits = sig.recvSplits
  if (sig.counts !== undefined) c.counts = sig.counts
  if (sig.combine !== undefined) c.combine = sig.combine
  if (out !== undefined) c.out = out
  if (sendRows !== undefined) c.sendRows = sendRows
  return c
}

/**
 * Where a member's result may lie once a backend delivers it: host storage, or a device array
 * where the engine ran on device memory (the NCCL backend on device-resident tensors).
 * @category models
 */
export type Values = DType.Storage | DeviceArray

/**
 * One member's result (host storage when computed by the core).
 * @category models
 */
export interface Output<Data = DType.Storage> {
  readonly data: Data
  readonly shape: ReadonlyArray<number>
  /** allGatherV: rows from each member; allToAllV: rows received from each member ([source * chunks + chunk]). */
  readonly splits?: ReadonlyArray<number>
}

/** `o` holding `data` instead (fields written out: scripts/check-spreads.mjs). */
const withData = (o: Output, data: DType.Storage): Output => (o.splits === undefined ? { data, shape: o.shape } : { data, shape: o.shape, splits: o.splits })
const rowSize = (shape: ReadonlyArray<number>) => Tensor.sizeOf(shape.slice(1))
const rows = (shape: ReadonlyArray<number>) => shape[0] ?? 1

/**
 * What must be equal across members for this op, as text (compared verbatim).
 * @category mapping
 */
export const signature = (c: Signature): string => {
  const trailing = `[*, ${c.shape.slice(1).join(", ")}]`
  switch (c.op) {
    case "allReduce":
    case "reduceScatter":
      return `${c.op}(${c.reduce ?? "sum"}) ${c.dtype} [${c.shape.join(", ")}]`
    case "allGather":
      return `${c.op} ${c.dtype} [${c.shape.join(", ")}]`
    case "reduceScatterV":
      return `${c.op}(${c.reduce ?? "sum"}) ${c.dtype} [${c.shape.join(", ")}] counts [${(c.counts ?? []).join(", ")}]`
    case "broadcast":
      return `${c.op}(root ${c.root ?? 0}) ${c.dtype}`
    case "barrier":
      return "barrier"
    case "allToAllV":
      return (c.chunks ?? 1) === 1 ? `${c.op} ${c.dtype} ${trailing}` : `${c.op} ${c.dtype} ${trailing} in ${c.chunks} chunks (${c.chunkOrder} chunk-major)`
    default:
      return `${c.op} ${c.dtype} ${trailing}`
  }
}

const sameList = (a: ReadonlyArray<number> | undefined, b: ReadonlyArray<number> | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]))

/**
 * Whether two contributions may meet in one collective: the same thing `signature` compares,
 * without building strings (this runs on every arrival).
 * @category guards
 */
export const agrees = (a: Signature, b: Signature): boolean => {
  if (a.op !== b.op || a.dtype !== b.dtype) return false
  const trailing = a.shape.length === b.shape.length && a.shape.every((d, i) => i === 0 || d === b.shape[i])
  switch (a.op) {
    case "allReduce":
    case "reduceScatter":
    case "allGather":
      return (a.reduce ?? "sum") === (b.reduce ?? "sum") && sameList(a.shape, b.shape)
    case "reduceScatterV":
      return (a.reduce ?? "sum") === (b.reduce ?? "sum") && sameList(a.shape, b.shape) && sameList(a.counts, b.counts)
    case "broadcast":
      return (a.root ?? 0) === (b.root ?? 0)
    case "barrier":
      return true
    case "allToAllV":
      return trailing && (a.chunks ?? 1) === (b.chunks ?? 1) && ((a.chunks ?? 1) === 1 || a.chunkOrder === b.chunkOrder)
    default:
      return trailing
  }
}

/**
 * Checks one member's own arguments; returns a description of the problem or undefined.
 * @category guards
 */
export const checkOwn = (c: Signature, groupSize: number): string | undefined => {
  if (c.op !== "barrier" && c.shape.length === 0) return "collectives move rows: the tensor needs at least one dim"
  switch (c.op) {
    case "reduceScatter":
      return rows(c.shape) % groupSize === 0 ? undefined : `${rows(c.shape)} rows do not split evenly over ${groupSize} members`
    case "reduceScatterV": {
      const counts = c.counts ?? []
      if (counts.length !== groupSize) return `counts has ${counts.length} entries for ${groupSize} members`
      const total = counts.reduce((a, b) => a + b, 0)
      return total === rows(c.shape) ? undefined : `counts add up to ${total} rows but the tensor has ${rows(c.shape)}`
    }
    case "allToAllV": {
      const chunks = c.chunks ?? 1
      if (!Number.isInteger(chunks) || chunks < 1) return `chunks ${chunks} is not an integer >= 1`
      const entries = groupSize * chunks
      const per = chunks === 1 ? "" : ` (${chunks} chunks for each of ${groupSize} members)`
      const s = c.sendSplits ?? []
      if (s.length !== entries) return `sendSplits has ${s.length} entries for ${groupSize} members${per}`
      if (s.some((x) => !Number.isInteger(x) || x < 0)) return `sendSplits [${s.join(", ")}] must be non-negative integers`
      const total = s.reduce((a, b) => a + b, 0)
      if (total !== rows(c.shape)) return `sendSplits add up to ${total} rows but the tensor has ${rows(c.shape)}`
      if (chunks === 1 && c.combine === undefined) return undefined
      if (chunks > 1 && c.chunkOrder !== "received" && c.chunkOrder !== "sent") return `chunkOrder ${c.chunkOrder} is not "received" or "sent"`
      const r = c.recvSplits ?? []
      if (r.length !== entries) return `recvSplits has ${r.length} entries for ${groupSize} members${per}`
      if (r.some((x) => !Number.isInteger(x) || x < 0)) return `recvSplits [${r.join(", ")}] must be non-negative integers`
      return c.combine === undefined
        ? undefined
        : ReceiveCombine.problem(
            c.combine,
            r.reduce((a, b) => a + b, 0),
          )
    }
    case "broadcast":
      return Number.isInteger(c.root) && (c.root as number) >= 0 && (c.root as number) < groupSize
        ? undefined
        : `root ${c.root} is not a group-local rank of a group of ${groupSize}`
    default:
      return undefined
  }
}

/**
 * How many elements member `j`'s result has where a receive buffer is used (undefined for
 * reduceScatter(V), which always returns fresh storage).
 * @category mapping
 */
const resultLength = (ss: ReadonlyArray<Signature>, j: number): number | undefined => {
  const first = ss[0] as Signature
  const inner = rowSize(first.shape)
  switch (first.op) {
    case "barrier":
      return 0
    case "allReduce":
      return Tensor.sizeOf(first.shape)
    case "broadcast":
      return Tensor.sizeOf((ss[first.root ?? 0] as Signature).shape)
    case "allGather":
    case "allGatherV":
      return ss.reduce((a, s) => a + rows(s.shape), 0) * inner
    case "allToAllV": {
      const combined = (ss[j] as Signature).combine
      if (combined !== undefined) return combined.tokens * inner
      const chunks = first.chunks ?? 1
      let received = 0
      for (const s of ss) for (let l = 0; l < chunks; l++) received += (s.sendSplits ?? [])[j * chunks + l] as number
      return received * inner
    }
    default:
      return undefined
  }
}

/**
 * Why member `j`'s receive buffer cannot hold its result, or undefined when it can (or there
 * is none). Checked for every member before a collective completes, so the slot fails as a
 * whole instead of one member failing late.
 * @category guards
 */
export const receiveBufferProblem = (ss: ReadonlyArray<Signature>, j: number, out: { readonly length: number; readonly dtype: DType.DType } | undefined): string | undefined => {
  const me = ss[j] as Signature
  const length = out === undefined ? undefined : resultLength(ss, j)
  return out === undefined || length === undefined ? undefined : bufferProblem(me.rank, out, length, me.dtype)
}

/**
 * Why a receive buffer cannot hold a result of `length` elements of `dtype`, or undefined when
 * it can (the one wording for every transport).
 * @category guards
 */
export const bufferProblem = (rank: number, out: { readonly length: number; readonly dtype: DType.DType }, length: number, dtype: DType.DType): string | undefined =>
  out.length === length && out.dtype === dtype ? undefined : `rank ${rank}: the receive buffer holds ${out.length} ${out.dtype} elements; the result needs ${length} ${dtype}`

/**
 * The result of group-local member `j` from every member's contribution (in group-local
 * order, already checked to agree, receive buffers included): the one definition of what each
 * collective means. The arithmetic runs in one order on every backend (out = first part, then
 * += or max= each later part, in group order), so every backend gets the same bits. Written
 * into `out` (member j's receive buffer) where one is given, except for reduceScatter(V).
 * @category mapping
 */
export const outputFor = (cs: ReadonlyArray<Contribution>, j: number, out?: DType.Storage): Output => {
  const first = cs[0] as Contribution
  const dtype = first.dtype
  const data = cs.map((c) => c.data)
  const target = (length: number) => out ?? DType.allocate(dtype, length)
  // For results whose every element the copies below write (gathers, all-to-all): no zeroing pass.
  const overwritten = (length: number) => out ?? DType.allocateUninitialized(dtype, length)
  switch (first.op) {
    case "barrier":
      return { data: target(0), shape: [0] }
    case "allReduce":
      // combine writes every element (the first part, then each later one added or maxed in).
      return { data: combine(first.reduce ?? "sum", data, overwritten(first.data.length), 0), shape: first.shape }
    case "broadcast": {
      const root = cs[first.root ?? 0] as Contribution
      const result = target(root.data.length)
      copyInto(result, 0, root.data)
      return { data: result, shape: root.shape }
    }
    case "allGather":
    case "allGatherV": {
      const splits = cs.map((c) => rows(c.shape))
      const total = splits.reduce((a, b) => a + b, 0)
      const result = overwritten(total * rowSize(first.shape))
      let offset = 0
      for (const c of cs) {
        copyInto(result, offset, c.data)
        offset += c.data.length
      }
      return { data: result, shape: [total, ...first.shape.slice(1)], splits }
    }
    case "reduceScatter":
    case "reduceScatterV": {
      const inner = rowSize(first.shape)
      const counts = first.counts ?? cs.map(() => rows(first.shape) / cs.length)
      const start = counts.slice(0, j).reduce((a, b) => a + b, 0)
      const count = counts[j] as number
      // combine writes every element of the member's block: no zeroing pass.
      return { data: combine(first.reduce ?? "sum", data, DType.allocateUninitialized(dtype, count * inner), start * inner), shape: [count, ...first.shape.slice(1)] }
    }
    case "allToAllV": {
      const inner = rowSize(first.shape)
      const chunks = first.chunks ?? 1
      const order = first.chunkOrder ?? "received"
      const g = cs.length
      // splits[i * chunks + l]: the rows of chunk l that member i sends member j.
      const splits = new Array<number>(g * chunks)
      for (let i = 0; i < g; i++) for (let l = 0; l < chunks; l++) splits[i * chunks + l] = ((cs[i] as Contribution).sendSplits ?? [])[j * chunks + l] as number
      const total = splits.reduce((a, b) => a + b, 0)
      const received = receivedRows(cs, j, splits, Chunked.blockStarts(splits, g, chunks, Chunked.resultOrder(order)), total)
      const combined = (cs[j] as Contribution).combine
      if (combined !== undefined) return { data: ReceiveCombine.sumOnto(combined, received, inner, dtype, out), shape: [combined.tokens, ...first.shape.slice(1)], splits }
      const result = overwritten(total * inner)
      ReceiveCombine.gatherAll(received, inner, result)
      return { data: result, shape: [total, ...first.shape.slice(1)], splits }
    }
  }
}

// The lists receivedRows fills, reused from call to call (grown when too short): outputFor hands
// them to one synchronous kernel and drops them, and a fresh pair of typed arrays per member per
// exchange cost more than the lists' filling (tens of microseconds each in fresh memory).
let sourceList = new Int32Array(0)
let rowList = new Int32Array(0)
const rowLists = (total: number): { readonly source: Int32Array; readonly row: Int32Array } => {
  if (sourceList.length < total) {
    const size = Math.max(total, 2 * sourceList.length)
    sourceList = new Int32Array(size)
    rowList = new Int32Array(size)
  }
  return { source: sourceList.subarray(0, total), row: rowList.subarray(0, total) }
}

/**
 * Where each row member j receives lies, in the order its result would list them (`at`: the
 * first row of each block [source * chunks + chunk] there): row r is a row of source i's data
 * (gathered rows read where they lie).
 */
const receivedRows = (cs: ReadonlyArray<Contribution>, j: number, splits: ReadonlyArray<number>, at: ReadonlyArray<number>, total: number): ReceiveCombine.ReceivedRows => {
  const first = cs[0] as Contribution
  const chunks = first.chunks ?? 1
  const order = first.chunkOrder ?? "received"
  const { source, row } = rowLists(total)
  cs.forEach((c, i) => {
    const from = Chunked.blockStarts(c.sendSplits ?? [], cs.length, chunks, Chunked.sendOrder(order))
    for (let l = 0; l < chunks; l++) {
      const len = splits[i * chunks + l] as number
      const begin = from[j * chunks + l] as number
      const to = at[i * chunks + l] as number
      if (len === 0) continue
      source.fill(i, to, to + len)
      if (c.sendRows === undefined) for (let x = 0; x < len; x++) row[to + x] = begin + x
      else row.set(c.sendRows.subarray(begin, begin + len), to)
    }
  })
  return { sources: cs.map((c) => c.data), source, row }
}

/** Ops whose result is the same on every member (computed once, then copied or shared). */
const sameForAll = (op: Op): boolean => op === "barrier" || op === "allReduce" || op === "broadcast" || op === "allGather" || op === "allGatherV"

/**
 * The result of every member (outputFor of each), computed in one place: results that are
 * equal for all are computed once (into the first member's receive buffer when it gave one, so
 * the common case of reused buffers allocates nothing), then copied into each other member's
 * receive buffer, or shared (`share`, zero-copy mode) or copied as fresh storage. A member's own
 * receive buffer is never handed to another member.
 * @category mapping
 */
export const compute = (cs: ReadonlyArray<Contribution>, share: boolean): Array<Output> => {
  const first = cs[0] as Contribution
  if (!sameForAll(first.op)) return cs.map((c, j) => outputFor(cs, j, c.out))
  const one = outputFor(cs, 0, first.out)
  const owned = first.out !== undefined
  return cs.map((c, j) => {
    if (j === 0) return one
    if (c.out !== undefined) {
      copyInto(c.out, 0, one.data)
      return withData(one, c.out)
    }
    return share && !owned ? one : withData(one, DType.copyOf(one.data))
  })
}
