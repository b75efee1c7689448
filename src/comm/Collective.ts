/**
 * Collective: what each member contributes to a collective, how contributions are checked
 * against each other, and the pure semantics of every collective (any backend computes the
 * same results from the same contributions).
 *
 * All collectives work on dim 0 (rows; tokens are rows): allGather concatenates rows in
 * group-local order, reduceScatter gives member i the i-th block of rows of the sum, allToAllV
 * sends sendSplits[j] rows to member j. Trailing dims must agree across members.
 */
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import { combine, copyInto } from "./Kernels.js"

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
  /** allToAllV: rows sent to each member, in group-local order. */
  readonly sendSplits?: ReadonlyArray<number>
  /** reduceScatterV: rows each member receives, in group-local order. */
  readonly counts?: ReadonlyArray<number>
}

/**
 * One member's contribution: its signature and its data.
 * @category models
 */
export interface Contribution extends Signature {
  readonly data: DType.Storage
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
export const contribution = (sig: Signature, data: DType.Storage, out?: DType.Storage): Contribution => {
  const c: { -readonly [K in keyof Contribution]: Contribution[K] } = { op: sig.op, rank: sig.rank, dtype: sig.dtype, shape: sig.shape, data }
  if (sig.reduce !== undefined) c.reduce = sig.reduce
  if (sig.root !== undefined) c.root = sig.root
  if (sig.sendSplits !== undefined) c.sendSplits = sig.sendSplits
  if (sig.counts !== undefined) c.counts = sig.counts
  if (out !== undefined) c.out = out
  return c
}

/**
 * One member's result.
 * @category models
 */
export interface Output {
  readonly data: DType.Storage
  readonly shape: ReadonlyArray<number>
  /** allGatherV: rows from each member; allToAllV: rows received from each member. */
  readonly splits?: ReadonlyArray<number>
}

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
      const s = c.sendSplits ?? []
      if (s.length !== groupSize) return `sendSplits has ${s.length} entries for ${groupSize} members`
      if (s.some((x) => !Number.isInteger(x) || x < 0)) return `sendSplits [${s.join(", ")}] must be non-negative integers`
      const total = s.reduce((a, b) => a + b, 0)
      return total === rows(c.shape) ? undefined : `sendSplits add up to ${total} rows but the tensor has ${rows(c.shape)}`
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
    case "allToAllV":
      return ss.reduce((a, s) => a + ((s.sendSplits ?? [])[j] as number), 0) * inner
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
  if (out === undefined || length === undefined || (out.length === length && out.dtype === me.dtype)) return undefined
  return `rank ${me.rank}: the receive buffer holds ${out.length} ${out.dtype} elements; the result needs ${length} ${me.dtype}`
}

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
      const splits = cs.map((c) => (c.sendSplits ?? [])[j] as number)
      const total = splits.reduce((a, b) => a + b, 0)
      const result = overwritten(total * inner)
      let offset = 0
      cs.forEach((c, i) => {
        // Member i's block for member j starts after its blocks for members 0..j-1.
        const begin = (c.sendSplits ?? []).slice(0, j).reduce((a, b) => a + b, 0) * inner
        const len = (splits[i] as number) * inner
        copyInto(result, offset, c.data.subarray(begin, begin + len))
        offset += len
      })
      return { data: result, shape: [total, ...first.shape.slice(1)], splits }
    }
  }
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
      return { ...one, data: c.out }
    }
    return share && !owned ? one : { ...one, data: DType.copyOf(one.data) }
  })
}
