/**
 * ReceiveCombine: an allToAllV whose receiver sums the rows it receives onto token rows as they
 * arrive (Request.combine), instead of keeping them: received row r (in the order the exchange
 * would have laid them out, Chunked.ts) goes onto row index[r] of a [tokens, ...] result, in
 * increasing r, starting from +0. That is the MoE unpermute fused with the combine exchange: a
 * transport that computes results from every contribution (Collective.outputFor) reads each row
 * where its sender holds it and writes each token once; others receive the rows and sum them
 * here (ChunkedLowering). The same bits either way, and the same as the exchange followed by
 * Permute.unpermute (the native combine kernel sums in increasing r, as this loop does).
 */
import { activeDispatchKernels } from "../native/CpuDispatch.js"
import * as DType from "../tensor/DType.js"

/**
 * What a receiver asks of its result: received row r onto row index[r] of `tokens` rows, times
 * weights[r] where given (the product rounded to the rows' dtype, then added: the bits of a
 * multiply by the weights before the exchange). The weights are the receiver's own: the MoE
 * combine weights each returned row by the prob its token gave that row's expert.
 * @category models
 */
export interface Combine {
  readonly index: Int32Array
  readonly tokens: number
  readonly weights?: DType.Storage
}

/**
 * Why `combine` cannot sum `received` rows, or undefined when it can.
 * @category guards
 */
export const problem = (combine: Combine, received: number | undefined): string | undefined => {
  const { index, tokens } = combine
  if (!Number.isInteger(tokens) || tokens < 0) return `combine.tokens ${tokens} is not an integer >= 0`
  if (received === undefined) return "combine needs recvSplits (the rows this member receives from each member)"
  if (index.length !== received) return `combine.index has ${index.length} entries for the ${received} rows recvSplits receive`
  if (combine.weights !== undefined && combine.weights.length !== received)
    return `combine.weights has ${combine.weights.length} entries for the ${received} rows recvSplits receive`
  for (let r = 0; r < index.length; r++) {
    const t = index[r] as number
    if (!(t >= 0 && t < tokens)) return `combine.index[${r}] = ${t} is not a row of the ${tokens} tokens`
  }
  return undefined
}

/**
 * Where the received rows lie: row r is row `row[r]` of source `source[r]`.
 * @category models
 */
export interface ReceivedRows {
  readonly sources: ReadonlyArray<DType.Storage>
  readonly source: Int32Array
  readonly row: Int32Array
}

/**
 * The [tokens * inner] sum of the received rows onto their tokens (into `into` where given, else
 * new storage; every element written): the native kernel on float32, else the loop it implements.
 * @category kernels
 */
export const sumOnto = (combine: Combine, rows: ReceivedRows, inner: number, dtype: DType.DType, into?: DType.Storage): DType.Storage => {
  const { index, tokens, weights } = combine
  const k = dtype === "float32" && inner > 0 ? activeDispatchKernels() : undefined
  if (k !== undefined && rows.sources.every((s) => s instanceof Float32Array) && (weights === undefined || weights instanceof Float32Array)) {
    const out = (into ?? DType.allocateUninitialized(dtype, tokens * inner)) as Float32Array
    k.combineRowsFrom(rows.sources as ReadonlyArray<Float32Array>, rows.source, rows.row, index, weights ?? null, tokens, inner, out)
    return out
  }
  const out = into?.fill(0) ?? DType.allocate(dtype, tokens * inner)
  if (inner === 0) return out
  // A product is rounded to the rows' storage before it is added, as a multiply stored first.
  const round = out instanceof Float32Array ? Math.fround : (x: number) => x
  for (let r = 0; r < index.length; r++) {
    const src = rowOf(rows, r, inner)
    const to = (index[r] as number) * inner
    const w = weights?.[r]
    if (w === undefined) for (let c = 0; c < inner; c++) out[to + c] = (out[to + c] as number) + (src[c] as number)
    else for (let c = 0; c < inner; c++) out[to + c] = (out[to + c] as number) + round(w * (src[c] as number))
  }
  return out
}

/** Received row r where its source holds it (a view), checked as the native kernels check it. */
const rowOf = (rows: ReceivedRows, r: number, inner: number): DType.Storage => {
  const src = rows.sources[rows.source[r] as number]
  const from = (rows.row[r] as number) * inner
  if (src === undefined || !(from >= 0 && from + inner <= src.length)) {
    throw new RangeError(`received row ${r}: row ${rows.row[r]} of source ${rows.source[r]} is outside the rows that source holds`)
  }
  return src.subarray(from, from + inner)
}

/**
 * The received rows copied into `out` in order, each read where its sender holds it: in one
 * native pass on float32 (its streaming decided on the whole result, not each block), else a
 * copy per row.
 * @category kernels
 */
export const gatherAll = (rows: ReceivedRows, inner: number, out: DType.Storage): void => {
  const n = rows.source.length
  if (n === 0 || inner === 0) return
  const k = out instanceof Float32Array ? activeDispatchKernels() : undefined
  if (k !== undefined && rows.sources.every((s) => s instanceof Float32Array)) {
    k.gatherRowsFrom(rows.sources as ReadonlyArray<Float32Array>, rows.source, rows.row, inner, out as Float32Array)
    return
  }
  for (let r = 0; r < n; r++) out.set(rowOf(rows, r, inner), r * inner)
}

/**
 * The rows of one buffer, in order (a receiver that already holds them contiguously).
 * @category constructors
 */
export const contiguous = (data: DType.Storage, rows: number): ReceivedRows => {
  const row = new Int32Array(rows)
  for (let r = 0; r < rows; r++) row[r] = r
  return { sources: [data], source: new Int32Array(rows), row }
}
