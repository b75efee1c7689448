/**
 * Header: a collective's signature as a fixed-size row of numbers, so the members of a group
 * can exchange every member's signature with one allgather before any data moves (MPI has no
 * rendezvous of its own that would catch a mismatched op; a mismatched MPI collective hangs or
 * corrupts). Layout (float64, exact for every integer used):
 *
 *   [0] op  [1] dtype  [2] reduce  [3] root  [4] ndim  [5..12] shape (at most 8 dims)
 *   [13] receive-buffer length (-1: none)  [14] its dtype  [15] list length (-1: none)
 *   [16] fast: 1 when the member has already planned its data op (its own arguments are fine)
 *   [17..17+G) the list: sendSplits (allToAllV) or counts (reduceScatterV), G = group size
 *
 * The engine thread (cuda/src/mpi/engine.cc) reads this layout in one place: when every
 * member's row is equal but for [13] and [14] and says fast, the members agree, so it starts
 * the data op at once instead of handing the rows back to be judged here.
 *
 * A member's arguments that do not fit (more than 8 dims, a list longer than the group) are
 * still sent as far as they fit, with their true lengths, so every member's checkOwn sees the
 * same problem and fails the same way.
 */
import type * as DType from "../../tensor/DType.js"
import type * as Collective from "../Collective.js"
import * as CommError from "../CommError.js"
import * as Group from "../Group.js"

const ops: ReadonlyArray<Collective.Op> = ["allReduce", "allGather", "allGatherV", "reduceScatter", "reduceScatterV", "allToAllV", "broadcast", "barrier"]
const dtypes: ReadonlyArray<DType.DType> = ["float32", "float64"]
const maxDims = 8
const fixed = 17

/**
 * The numbers of one header for a group of `groupSize`.
 * @category configuration
 */
export const length = (groupSize: number): number => fixed + groupSize

/**
 * What a member tells the others: its signature and its receive buffer, if any.
 * @category models
 */
export interface Declared {
  readonly signature: Collective.Signature
  readonly buffer: { readonly length: number; readonly dtype: DType.DType } | undefined
  /** The member planned its data op and will let the engine start it when all agree. */
  readonly fast?: boolean
}

/**
 * Writes a member's header into `into` at `offset`.
 * @category mapping
 */
export const encode = (d: Declared, groupSize: number, into: Float64Array, offset = 0): void => {
  const s = d.signature
  const h = into.subarray(offset, offset + length(groupSize))
  h.fill(0)
  h[0] = ops.indexOf(s.op)
  h[1] = dtypes.indexOf(s.dtype)
  h[2] = s.reduce === "max" ? 1 : 0
  h[3] = s.root ?? -1
  h[4] = s.shape.length
  s.shape.slice(0, maxDims).forEach((n, i) => {
    h[5 + i] = n
  })
  h[13] = d.buffer === undefined ? -1 : d.buffer.length
  h[14] = d.buffer === undefined ? 0 : dtypes.indexOf(d.buffer.dtype)
  const list = s.sendSplits ?? s.counts
  h[15] = list === undefined ? -1 : list.length
  h[16] = d.fast === true ? 1 : 0
  list?.slice(0, groupSize).forEach((n, i) => {
    h[fixed + i] = n
  })
}

/**
 * Reads member `rank`'s header from `from` at `offset`.
 * @category mapping
 */
export const decode = (from: Float64Array, offset: number, groupSize: number, rank: number): Declared => {
  const h = from.subarray(offset, offset + length(groupSize))
  const op = ops[h[0] as number] ?? "barrier"
  const ndim = h[4] as number
  // Dims past the eighth were not sent: they read as 1, and the true count is kept, so a
  // 9-dim tensor is still told apart from an 8-dim one.
  const shape = Array.from({ length: ndim }, (_, i) => (i < maxDims ? (h[5 + i] as number) : 1))
  const listLength = h[15] as number
  const list = listLength < 0 ? undefined : Array.from({ length: listLength }, (_, i) => (i < groupSize ? (h[fixed + i] as number) : 0))
  const signature: Collective.Signature = {
    op,
    rank,
    dtype: dtypes[h[1] as number] ?? "float32",
    shape,
    ...(op === "allReduce" || op === "reduceScatter" || op === "reduceScatterV" ? { reduce: h[2] === 1 ? ("max" as const) : ("sum" as const) } : {}),
    ...(op === "broadcast" ? { root: h[3] as number } : {}),
    ...(op === "allToAllV" && list !== undefined ? { sendSplits: list } : {}),
    ...(op === "reduceScatterV" && list !== undefined ? { counts: list } : {}),
  }
  const bufferLength = h[13] as number
  return { signature, buffer: bufferLength < 0 ? undefined : { length: bufferLength, dtype: dtypes[h[14] as number] ?? "float32" } }
}

/**
 * Whether a member's tensor has more dims than a header carries.
 * @category guards
 */
export const tooManyDims = (shape: ReadonlyArray<number>): boolean => shape.length > maxDims

/**
 * The verdict on members' signatures when one of them has more dims than a header carries (its
 * member's BadInput, the others' Mismatch), or undefined when none has.
 * @category guards
 */
export const tooDeep = (group: Group.Group, seq: number, parts: ReadonlyArray<Collective.Signature>): ((rank: number) => CommError.CommError) | undefined => {
  const deep = parts.find((p) => tooManyDims(p.shape))
  if (deep === undefined) return undefined
  return (r) =>
    CommError.make({
      reason: r === deep.rank ? "BadInput" : "Mismatch",
      group: Group.format(group),
      op: deep.op,
      seq,
      rank: r,
      ranks: [deep.rank],
      detail: `rank ${deep.rank}: a tensor of ${deep.shape.length} dims (the MPI backend carries at most ${maxDims})`,
    })
}
