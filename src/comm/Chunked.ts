/**
 * Chunked: the all-to-all whose blocks come in chunks, and where each chunk goes. The MoE
 * dispatcher's rows for an ep member are one chunk per local expert: the token side keeps them
 * member-major (every expert of member 0, then of member 1, ...: expert-major), the expert side
 * wants them chunk-major (local expert 0 from every source, then local expert 1, ...). Placing
 * each chunk where it belongs while the exchange copies it replaces the separate sort pass the
 * rows needed before and after the experts.
 *
 * With G members and L chunks, counts are indexed [member * L + chunk]. A buffer of blocks is
 * laid out member-major (member, chunk) or chunk-major (chunk, member). A chunked allToAllV
 * (Collective.Signature `chunks` L, `chunkOrder`) is, for member j:
 *
 *   "received"  every send buffer member-major (destination, chunk) with sendSplits
 *               [destination * L + chunk]; j's result chunk-major (chunk, source)
 *   "sent"      every send buffer chunk-major (chunk, destination); j's result member-major
 *               (source, chunk)
 *
 * and either way j declares the rows it receives, recvSplits [source * L + chunk], which must be
 * what the sources send it (a mismatch fails the collective, naming the ranks). The two orders
 * are each other's adjoint: the reverse exchange of a "received" one is a "sent" one with the
 * splits swapped. L = 1 is the plain allToAllV.
 *
 * A transport that computes results from every contribution (Collective.outputFor) places the
 * chunks in its one copy; others get the plain exchange plus one local move of the blocks
 * (Endpoint), the same rows in the same places. A member may also send rows gathered from its
 * tensor (Request.sendRows: the dispatcher's token rows in expert order), so that the copy is
 * the permute as well; where the transport cannot, the rows are gathered first.
 */
import type * as DType from "../tensor/DType.js"
import { copyInto } from "./Kernels.js"

/**
 * Which side of a chunked allToAllV holds its rows chunk-major.
 * @category models
 */
export type ChunkOrder = "received" | "sent"

/**
 * What a member declares of a chunked allToAllV besides its tensor: the chunks, the side that
 * holds them chunk-major, and the rows it sends and receives ([member * chunks + chunk]).
 * @category models
 */
export interface Exchange {
  readonly chunks: number
  readonly chunkOrder: ChunkOrder
  readonly sendSplits: ReadonlyArray<number>
  readonly recvSplits: ReadonlyArray<number>
}

/**
 * The reverse of an exchange (its adjoint): the splits swapped, the other side chunk-major.
 * @category mapping
 */
export const reverse = (e: Exchange): Exchange => ({
  chunks: e.chunks,
  chunkOrder: e.chunkOrder === "received" ? "sent" : "received",
  sendSplits: e.recvSplits,
  recvSplits: e.sendSplits,
})

/**
 * How the blocks of one buffer follow each other.
 * @category models
 */
export type BlockOrder = "member-major" | "chunk-major"

/**
 * The order of every send buffer of a chunked allToAllV.
 * @category mapping
 */
export const sendOrder = (o: ChunkOrder): BlockOrder => (o === "sent" ? "chunk-major" : "member-major")

/**
 * The order of every result of a chunked allToAllV.
 * @category mapping
 */
export const resultOrder = (o: ChunkOrder): BlockOrder => (o === "received" ? "chunk-major" : "member-major")

/**
 * The first row of every block [member * chunks + chunk] of a buffer whose blocks have `counts`
 * rows and follow each other in `order`.
 * @category mapping
 */
export const blockStarts = (counts: ReadonlyArray<number>, members: number, chunks: number, order: BlockOrder): Array<number> => {
  const starts = new Array<number>(members * chunks)
  let row = 0
  if (order === "member-major") {
    for (let i = 0; i < members * chunks; i++) {
      starts[i] = row
      row += counts[i] as number
    }
  } else {
    for (let l = 0; l < chunks; l++) {
      for (let m = 0; m < members; m++) {
        starts[m * chunks + l] = row
        row += counts[m * chunks + l] as number
      }
    }
  }
  return starts
}

/**
 * Copies every block of `src` (in `from` order) to its place in `dst` (in `to` order); blocks
 * have `counts` rows of `inner` elements.
 * @category kernels
 */
export const moveBlocks = (
  src: DType.Storage,
  dst: DType.Storage,
  counts: ReadonlyArray<number>,
  members: number,
  chunks: number,
  inner: number,
  from: BlockOrder,
  to: BlockOrder,
): void => {
  const a = blockStarts(counts, members, chunks, from)
  const b = blockStarts(counts, members, chunks, to)
  for (let i = 0; i < members * chunks; i++) {
    const rows = counts[i] as number
    if (rows > 0) copyInto(dst, (b[i] as number) * inner, src.subarray((a[i] as number) * inner, ((a[i] as number) + rows) * inner))
  }
}

/**
 * moveBlocks as a row map: for each row of the `to`-ordered buffer, the row of the
 * `from`-ordered one it comes from (what a gather of rows takes, on a device).
 * @category mapping
 */
export const blockRows = (counts: ReadonlyArray<number>, members: number, chunks: number, from: BlockOrder, to: BlockOrder): Int32Array => {
  const a = blockStarts(counts, members, chunks, from)
  const b = blockStarts(counts, members, chunks, to)
  const total = counts.reduce((x, y) => x + y, 0)
  const index = new Int32Array(total)
  for (let i = 0; i < members * chunks; i++) {
    const rows = counts[i] as number
    for (let r = 0; r < rows; r++) index[(b[i] as number) + r] = (a[i] as number) + r
  }
  return index
}

/**
 * Rows per member: the counts of its chunks added up.
 * @category mapping
 */
export const perMember = (counts: ReadonlyArray<number>, members: number, chunks: number): Array<number> =>
  Array.from({ length: members }, (_, m) => {
    let rows = 0
    for (let l = 0; l < chunks; l++) rows += counts[m * chunks + l] as number
    return rows
  })

/**
 * Where member j's declared recvSplits differ from what the members send it (the first such
 * block, with both counts), or undefined when every member's agree. `ss` in group-local order.
 * @category guards
 */
export const countsProblem = (
  ss: ReadonlyArray<{ readonly rank: number; readonly sendSplits?: ReadonlyArray<number>; readonly recvSplits?: ReadonlyArray<number> }>,
  chunks: number,
): string | undefined => {
  for (let j = 0; j < ss.length; j++) {
    const me = ss[j] as (typeof ss)[number]
    // A plain exchange's receiver may leave its counts undeclared (chunked ones must declare).
    if (chunks === 1 && me.recvSplits === undefined) continue
    for (let i = 0; i < ss.length; i++) {
      const from = ss[i] as (typeof ss)[number]
      for (let l = 0; l < chunks; l++) {
        const sent = (from.sendSplits ?? [])[j * chunks + l]
        const expected = (me.recvSplits ?? [])[i * chunks + l]
        if (sent !== expected)
          return `rank ${me.rank} expects ${expected} rows of chunk ${l} from rank ${from.rank}, which sends it ${sent} (recvSplits must list what each member's sendSplits send)`
      }
    }
  }
  return undefined
}
