/**
 * DataPlan: the sizes of a collective's MPI data op on one member. A fixed-size collective
 * (allReduce, allGather, reduceScatter(V)) is planned from the member's own request before the
 * signatures are exchanged, since agreeing members have the same sizes; so the engine can start
 * its data op the moment every signature row agrees (one round trip). The helpers are the ones
 * the variable-size ops (allGatherV, allToAllV, broadcast) use once the rows are judged.
 */
import * as MpiAddon from "../../native/MpiAddon.js"
import * as DType from "../../tensor/DType.js"
import * as Collective from "../Collective.js"
import type { Request } from "../Communicator.js"
import * as Header from "./Header.js"

/**
 * The addon's element type of a dtype.
 * @category mapping
 */
export const typeOf = (dtype: DType.DType): number => (dtype === "float64" ? MpiAddon.TYPE.float64 : MpiAddon.TYPE.float32)
/**
 * Rows of a shape (dim 0; 1 for a scalar).
 * @category mapping
 */
export const rowsOf = (shape: ReadonlyArray<number>): number => shape[0] ?? 1
/**
 * Elements per row.
 * @category mapping
 */
export const innerOf = (shape: ReadonlyArray<number>): number => shape.slice(1).reduce((a, b) => a * b, 1)
/**
 * Displacements from counts (exclusive prefix sums).
 * @category mapping
 */
export const prefix = (counts: ReadonlyArray<number>): Int32Array => {
  const out = new Int32Array(counts.length)
  for (let i = 1; i < counts.length; i++) out[i] = (out[i - 1] as number) + (counts[i - 1] as number)
  return out
}

/**
 * The data op of an allReduce, allGather or reduceScatter(V), planned from a member's own request.
 * @category models
 */
export interface FixedPlan {
  readonly dataOp: number
  readonly recv: DType.Storage
  readonly count: number
  readonly recvCounts: Int32Array
  readonly output: Collective.Output
}

/**
 * The data op of a fixed-size collective (its sizes follow from the member's own signature once
 * the members agree), or undefined for the other ops and for arguments or a receive buffer that
 * cannot work (the judged path then names the problem).
 * @category constructors
 */
export const fixedPlan = (request: Request, signature: Collective.Signature, size: number, local: number): FixedPlan | undefined => {
  if (Header.tooManyDims(signature.shape) || Collective.checkOwn(signature, size) !== undefined) return undefined
  const t = request.tensor
  const n = t.size
  const rows = rowsOf(t.shape)
  const inner = innerOf(t.shape)
  const into = (length: number): DType.Storage | undefined => {
    const out = request.out
    if (out === undefined) return DType.allocate(t.dtype, length)
    return out.data.length === length && out.dtype === t.dtype ? out.data : undefined
  }
  const none = new Int32Array(0)
  switch (request.op) {
    case "allReduce": {
      const recv = into(n)
      return recv === undefined ? undefined : { dataOp: MpiAddon.DATA_OP.allReduce, recv, count: n, recvCounts: none, output: { data: recv, shape: t.shape } }
    }
    case "allGather": {
      const recv = into(n * size)
      const shape = [rows * size, ...t.shape.slice(1)]
      return recv === undefined
        ? undefined
        : { dataOp: MpiAddon.DATA_OP.allGather, recv, count: n, recvCounts: none, output: { data: recv, shape, splits: new Array<number>(size).fill(rows) } }
    }
    case "reduceScatter":
    case "reduceScatterV": {
      const rowCounts = request.counts ?? new Array<number>(size).fill(rows / size)
      const mine = rowCounts[local] as number
      const recv = DType.allocate(t.dtype, mine * inner)
      return {
        dataOp: MpiAddon.DATA_OP.reduceScatter,
        recv,
        count: mine * inner,
        recvCounts: Int32Array.from(rowCounts.map((r) => r * inner)),
        output: { data: recv, shape: [mine, ...t.shape.slice(1)] },
      }
    }
    default:
      return undefined
  }
}
