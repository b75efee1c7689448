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

/**
 * The collective ops.
 * @category models
 */
export type Op = "allReduce" | "allGather" | "allGatherV" | "reduceScatter" | "reduceScatterV" | "allToAllV" | "broadcast" | "barrier"

/**
 * One member's contribution.
 * @category models
 */
export interface Contribution {
  readonly op: Op
  readonly rank: number
  readonly dtype: DType.DType
  readonly shape: ReadonlyArray<number>
  readonly data: DType.Storage
  /** allReduce / reduceScatter(V): the reduction. */
  readonly reduce?: "sum" | "max"
  /** broadcast: the group-local root. */
  readonly root?: number
  /** allToAllV: rows sent to each member, in group-local order. */
  readonly sendSplits?: ReadonlyArray<number>
  /** reduceScatterV: rows each member receives, in group-local order. */
  readonly counts?: ReadonlyArray<number>
  /**
   * Where this member wants its result written (a receive buffer it reuses across steps, as
   * with NCCL), instead of fresh storage: fresh large buffers cost page faults on every call.
   */
  readonly out?: DType.Storage
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
export const signature = (c: Contribution): string => {
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
export const agrees = (a: Contribution, b: Contribution): boolean => {
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
export const checkOwn = (c: Contribution, groupSize: number): string | undefined => {
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

/** The member's receive buffer when it gave one of the right size, else fresh storage. */
const target = (c: Contribution, length: number): DType.Storage => {
  if (c.out === undefined) return DType.allocate(c.dtype, length)
  if (c.out.length !== length || DType.of(c.out) !== c.dtype) {
    throw new RangeError(`rank ${c.rank}: the receive buffer holds ${c.out.length} ${DType.of(c.out)} elements; the result needs ${length} ${c.dtype}`)
  }
  return c.out
}

const combine = (op: "sum" | "max", parts: ReadonlyArray<DType.Storage>, dtype: DType.DType, from = 0, length = parts[0]?.length ?? 0): DType.Storage => {
  const out = DType.allocate(dtype, length)
  const first = parts[0]
  if (first === undefined) return out
  out.set(first.subarray(from, from + length))
  for (let p = 1; p < parts.length; p++) {
    const src = parts[p] as DType.Storage
    if (op === "sum") for (let i = 0; i < length; i++) out[i] = (out[i] as number) + (src[from + i] as number)
    else for (let i = 0; i < length; i++) out[i] = Math.max(out[i] as number, src[from + i] as number)
  }
  return out
}

/**
 * The result of every member, from the contributions in group-local order (already checked to
 * agree). `share` lets members receive one buffer where results are equal (zero-copy mode).
 * @category mapping
 */
export const compute = (cs: ReadonlyArray<Contribution>, share: boolean): Array<Output> => {
  const first = cs[0] as Contribution
  const n = cs.length
  const dtype = first.dtype
  // Equal results: shared in zero-copy mode, else one copy per member (into its buffer if any).
  const same = (o: Output): Array<Output> =>
    cs.map((c) => {
      if (c.out !== undefined) {
        const data = target(c, o.data.length)
        if (data !== o.data) data.set(o.data)
        return { ...o, data }
      }
      return share ? o : { ...o, data: o.data.slice() }
    })
  switch (first.op) {
    case "barrier":
      return same({ data: DType.allocate(dtype, 0), shape: [0] })
    case "allReduce":
      return same({ data: combine(first.reduce ?? "sum", cs.map((c) => c.data), dtype), shape: first.shape })
    case "broadcast": {
      const root = cs[first.root ?? 0] as Contribution
      return same({ data: share ? root.data : root.data.slice(), shape: root.shape })
    }
    case "allGather":
    case "allGatherV": {
      const inner = rowSize(first.shape)
      const splits = cs.map((c) => rows(c.shape))
      const total = splits.reduce((a, b) => a + b, 0)
      const out = DType.allocate(dtype, total * inner)
      let offset = 0
      for (const c of cs) {
        out.set(c.data, offset)
        offset += c.data.length
      }
      return same({ data: out, shape: [total, ...first.shape.slice(1)], splits })
    }
    case "reduceScatter":
    case "reduceScatterV": {
      const inner = rowSize(first.shape)
      const counts = first.counts ?? cs.map(() => rows(first.shape) / n)
      let start = 0
      return counts.map((count) => {
        const data = combine(first.reduce ?? "sum", cs.map((c) => c.data), dtype, start * inner, count * inner)
        start += count
        return { data, shape: [count, ...first.shape.slice(1)] }
      })
    }
    case "allToAllV": {
      const inner = rowSize(first.shape)
      // Where member i's block for member j starts: prefix sums of i's sendSplits.
      const starts = cs.map((c) => {
        const s = c.sendSplits ?? []
        const out: Array<number> = []
        let acc = 0
        for (const x of s) {
          out.push(acc)
          acc += x
        }
        return out
      })
      return cs.map((_, j) => {
        const splits = cs.map((c) => (c.sendSplits ?? [])[j] as number)
        const total = splits.reduce((a, b) => a + b, 0)
        const out = target(cs[j] as Contribution, total * inner)
        let offset = 0
        cs.forEach((c, i) => {
          const begin = ((starts[i] as Array<number>)[j] as number) * inner
          const len = (splits[i] as number) * inner
          out.set(c.data.subarray(begin, begin + len), offset)
          offset += len
        })
        return { data: out, shape: [total, ...first.shape.slice(1)], splits }
      })
    }
  }
}
