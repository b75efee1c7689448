/**
 * ControlBlock: the shared memory where the members of one group meet for their collectives,
 * without any other thread in between. One SharedArrayBuffer per group, the same for every
 * member (the main thread makes it once, on the first member's request, and hands it out).
 *
 * Collective `seq` of the group uses ring slot `seq % slots`. In a slot each member has:
 *   - a descriptor: its signature (op, dtype, shape, reduce, root, splits or counts, receive
 *     buffer) and where its data lies (a buffer id known to the peers, offset, length);
 *   - a reader count: the members still to read its part (set to n when it publishes; each
 *     reader takes one off when done). The owner reuses the slot, and in zero-copy mode
 *     completes its op, once it reads 0.
 * Per member, `waiting` says whether it waits for its readers (then the last reader rings it),
 * and `issued` counts the collectives it has published: member j arrived at `seq` once
 * issued[j] > seq (it writes its descriptor, then stores issued with Atomics, so a reader that
 * sees the count sees the descriptor). Per slot, `decided` holds the outcome, tagged with the
 * round (seq / slots + 1) so that one slot's successive collectives never mix: open, being
 * decided (one member won the compare-exchange and is writing a failure), ok, or failed. A
 * failure is written once, as JSON, beside the slot (the reason each member reports, op, ranks
 * and detail), so every member reports the same diagnosis even after the others moved on.
 */
import type * as Collective from "../Collective.js"
import type * as CommError from "../CommError.js"
import type * as DType from "../../tensor/DType.js"

/**
 * Ring slots per group: how many collectives one member may have published and not yet seen
 * read by everyone on one group.
 * @category configuration
 */
export const slots = 16

// Int32 words per member line and per slot header (a 64-byte line each: no false sharing).
const line = 16
const maxDims = 8
// Descriptor fields (float64 words), then the member list (splits or counts), n words.
const F = {
  op: 0,
  dtype: 1,
  reduce: 2,
  root: 3,
  dims: 4,
  shape: 5,
  outLength: 5 + maxDims,
  outDtype: 6 + maxDims,
  buffer: 7 + maxDims,
  offset: 8 + maxDims,
  length: 9 + maxDims,
  chunk: 10 + maxDims,
  listKind: 11 + maxDims,
  listLength: 12 + maxDims,
  list: 13 + maxDims,
} as const
const failureBytes = 4096

const ops: ReadonlyArray<Collective.Op> = ["allReduce", "allGather", "allGatherV", "reduceScatter", "reduceScatterV", "allToAllV", "broadcast", "barrier"]
const dtypes: ReadonlyArray<DType.DType> = ["float32", "float64"]
const reasons: ReadonlyArray<CommError.Reason> = ["Timeout", "Mismatch", "BadInput", "Closed"]
const opCodes = { allReduce: 0, allGather: 1, reduceScatter: 3, reduceScatterV: 4, broadcast: 6, barrier: 7 } as const

// An unnamed reduction is a sum, an unnamed root is 0 (as Collective.agrees reads them).
const reduceOf = (w: Float64Array, at: number): number => (w[at + F.reduce] === 2 ? 2 : 1)
const rootOf = (w: Float64Array, at: number): number => {
  const root = w[at + F.root] as number
  return Number.isNaN(root) ? 0 : root
}

/**
 * Outcome of a slot, for one round.
 * @category models
 */
export type State = "open" | "deciding" | "ok" | "failed" | "stale"

const stateCodes = { deciding: 1, ok: 2, failed: 3 } as const

/**
 * Where a member's data lies (beside its signature).
 * @category models
 */
export interface Placement {
  /** The owner's id of the shared buffer (-1: no data). */
  readonly buffer: number
  readonly offset: number
  readonly length: number
  /** The buffer is a pooled chunk whose header counts its readers (copying mode). */
  readonly chunk: boolean
}

/**
 * What every member reports when a collective fails (the reason is per member).
 * @category models
 */
export interface FailureRecord {
  /** The reason each member reports, in group-local order. */
  readonly reasons: ReadonlyArray<CommError.Reason>
  readonly op: string
  readonly ranks: ReadonlyArray<number>
  readonly detail: string
}

/**
 * Bytes of the control block of a group of `n`.
 * @category getters
 */
export const bytesFor = (n: number): number => layout(n).total

const layout = (n: number) => {
  const slotInts = line * (1 + Math.ceil(n / line))
  const ints = n * line + slots * slotInts
  const width = F.list + n
  const descriptors = ints * 4
  const failures = descriptors + slots * n * width * 8
  return { slotInts, width, descriptors, failures, total: failures + slots * failureBytes }
}

/**
 * One member's view of a group's control block.
 * @category models
 */
export class ControlBlock {
  readonly buffer: SharedArrayBuffer
  readonly n: number
  readonly ints: Int32Array
  readonly #words: Float64Array
  readonly #bytes: Uint8Array
  readonly #layout: ReturnType<typeof layout>

  constructor(buffer: SharedArrayBuffer, n: number) {
    const l = layout(n)
    if (buffer.byteLength < l.total) throw new RangeError(`the control block of a group of ${n} needs ${l.total} bytes, got ${buffer.byteLength}`)
    this.buffer = buffer
    this.n = n
    this.#layout = l
    this.ints = new Int32Array(buffer, 0, l.descriptors / 4)
    this.#words = new Float64Array(buffer, l.descriptors, (l.failures - l.descriptors) / 8)
    this.#bytes = new Uint8Array(buffer, l.failures, slots * failureBytes)
  }

  /**
   * Member j waits for its readers (a zero-copy part, or a slot it wants to reuse): a reader
   * that takes the last count off rings it then, and only then. Set before the check it guards.
   */
  setWaiting(j: number, waiting: boolean): void {
    Atomics.store(this.ints, j * line + 1, waiting ? 1 : 0)
  }

  /** Whether member j said it waits for its readers. */
  waiting(j: number): boolean {
    return Atomics.load(this.ints, j * line + 1) !== 0
  }

  /** How many collectives member j has published. */
  issued(j: number): number {
    return Atomics.load(this.ints, j * line)
  }

  /** The Int32 index of member j's reader count in the slot of `seq`. */
  leftIndex(seq: number, j: number): number {
    return this.n * line + (seq % slots) * this.#layout.slotInts + line + j
  }

  /** Member j's readers still to come at the slot of `seq`. */
  left(seq: number, j: number): number {
    return Atomics.load(this.ints, this.leftIndex(seq, j))
  }

  /** One reader fewer for member j's part at `seq`; true when it was the last. */
  readDone(seq: number, j: number): boolean {
    return Atomics.sub(this.ints, this.leftIndex(seq, j), 1) === 1
  }

  /** Member j will not be read at `seq` (the collective failed). */
  clearLeft(seq: number, j: number): void {
    Atomics.store(this.ints, this.leftIndex(seq, j), 0)
  }

  #decidedIndex(seq: number): number {
    return this.n * line + (seq % slots) * this.#layout.slotInts
  }

  #descriptor(seq: number, j: number): number {
    return ((seq % slots) * this.n + j) * this.#layout.width
  }

  /**
   * Member j publishes its part of `seq`: the descriptor, then its reader count, then its
   * issued count (the store that makes the rest visible). Its slot must be free (left 0).
   */
  publish(seq: number, j: number, s: Collective.Signature, out: { readonly length: number; readonly dtype: DType.DType } | undefined, p: Placement): void {
    const w = this.#words
    const at = this.#descriptor(seq, j)
    if (s.shape.length > maxDims) throw new RangeError(`collectives take tensors of up to ${maxDims} dims, got ${s.shape.length}`)
    w[at + F.op] = ops.indexOf(s.op)
    w[at + F.dtype] = dtypes.indexOf(s.dtype)
    w[at + F.reduce] = s.reduce === undefined ? 0 : s.reduce === "sum" ? 1 : 2
    w[at + F.root] = s.root ?? Number.NaN
    w[at + F.dims] = s.shape.length
    for (let d = 0; d < s.shape.length; d++) w[at + F.shape + d] = s.shape[d] as number
    w[at + F.outLength] = out === undefined ? -1 : out.length
    w[at + F.outDtype] = out === undefined ? 0 : dtypes.indexOf(out.dtype)
    w[at + F.buffer] = p.buffer
    w[at + F.offset] = p.offset
    w[at + F.length] = p.length
    w[at + F.chunk] = p.chunk ? 1 : 0
    const list = s.sendSplits ?? s.counts
    w[at + F.listKind] = s.sendSplits !== undefined ? 1 : s.counts !== undefined ? 2 : 0
    // A list of another length than n is its owner's BadInput (decided by the owner itself,
    // which has the whole list); only n entries are kept here.
    const kept = Math.min(list?.length ?? 0, this.n)
    w[at + F.listLength] = kept
    for (let i = 0; i < kept; i++) w[at + F.list + i] = (list as ReadonlyArray<number>)[i] as number
    Atomics.store(this.ints, this.leftIndex(seq, j), this.n)
    Atomics.store(this.ints, j * line, seq + 1)
  }

  /** Member j's signature at `seq` (its rank given); read only once it has published. */
  signature(seq: number, j: number, rank: number): Collective.Signature {
    const w = this.#words
    const at = this.#descriptor(seq, j)
    const dims = w[at + F.dims] as number
    const shape = Array.from({ length: dims }, (_, d) => w[at + F.shape + d] as number)
    const reduce = w[at + F.reduce] as number
    const root = w[at + F.root] as number
    const kind = w[at + F.listKind] as number
    const list = kind === 0 ? undefined : Array.from({ length: w[at + F.listLength] as number }, (_, i) => w[at + F.list + i] as number)
    return {
      op: ops[w[at + F.op] as number] as Collective.Op,
      rank,
      dtype: dtypes[w[at + F.dtype] as number] as DType.DType,
      shape,
      ...(reduce === 0 ? {} : { reduce: reduce === 1 ? "sum" : "max" }),
      ...(Number.isNaN(root) ? {} : { root }),
      ...(kind === 1 ? { sendSplits: list as Array<number> } : kind === 2 ? { counts: list as Array<number> } : {}),
    }
  }

  /**
   * Whether members i and j may meet at `seq`: Collective.agrees read straight from the
   * descriptors (no signature is built on this path, which every collective takes).
   */
  agrees(seq: number, i: number, j: number): boolean {
    const w = this.#words
    const a = this.#descriptor(seq, i)
    const b = this.#descriptor(seq, j)
    const op = w[a + F.op] as number
    if (op !== w[b + F.op] || w[a + F.dtype] !== w[b + F.dtype]) return false
    if (op === opCodes.barrier) return true
    if (op === opCodes.broadcast) return rootOf(w, a) === rootOf(w, b)
    const dims = w[a + F.dims] as number
    if (w[b + F.dims] !== dims) return false
    const uniform = op === opCodes.allReduce || op === opCodes.reduceScatter || op === opCodes.allGather || op === opCodes.reduceScatterV
    for (let d = uniform ? 0 : 1; d < dims; d++) if (w[a + F.shape + d] !== w[b + F.shape + d]) return false
    if (!uniform) return true
    if (reduceOf(w, a) !== reduceOf(w, b)) return false
    if (op !== opCodes.reduceScatterV) return true
    const length = w[a + F.listLength] as number
    if (w[a + F.listKind] !== w[b + F.listKind] || w[b + F.listLength] !== length) return false
    for (let k = 0; k < length; k++) if (w[a + F.list + k] !== w[b + F.list + k]) return false
    return true
  }

  /** Member j's receive buffer at `seq`, if it gave one. */
  receiveBuffer(seq: number, j: number): { readonly length: number; readonly dtype: DType.DType } | undefined {
    const at = this.#descriptor(seq, j)
    const length = this.#words[at + F.outLength] as number
    return length < 0 ? undefined : { length, dtype: dtypes[this.#words[at + F.outDtype] as number] as DType.DType }
  }

  /** Where member j's data lies at `seq`. */
  placement(seq: number, j: number): Placement {
    const w = this.#words
    const at = this.#descriptor(seq, j)
    return { buffer: w[at + F.buffer] as number, offset: w[at + F.offset] as number, length: w[at + F.length] as number, chunk: w[at + F.chunk] === 1 }
  }

  /** The outcome of `seq` so far. */
  state(seq: number): State {
    const v = Atomics.load(this.ints, this.#decidedIndex(seq))
    const round = Math.floor(seq / slots) + 1
    const r = v >>> 2
    if (r < round) return "open"
    if (r > round) return "stale"
    const code = v & 3
    return code === stateCodes.ok ? "ok" : code === stateCodes.failed ? "failed" : "deciding"
  }

  /**
   * Decides `seq` (ok, or failed with `failure`) unless another member already did; returns
   * the state that holds afterwards.
   */
  decide(seq: number, failure: FailureRecord | undefined): State {
    const index = this.#decidedIndex(seq)
    const round = Math.floor(seq / slots) + 1
    const current = Atomics.load(this.ints, index)
    if (current >>> 2 >= round) return this.state(seq)
    if (Atomics.compareExchange(this.ints, index, current, (round << 2) | stateCodes.deciding) !== current) return this.state(seq)
    if (failure === undefined) {
      Atomics.store(this.ints, index, (round << 2) | stateCodes.ok)
      return "ok"
    }
    this.#writeFailure(seq, failure)
    Atomics.store(this.ints, index, (round << 2) | stateCodes.failed)
    return "failed"
  }

  #writeFailure(seq: number, f: FailureRecord): void {
    const encode = (detail: string) => new TextEncoder().encode(JSON.stringify({ reasons: f.reasons.map((r) => reasons.indexOf(r)), op: f.op, ranks: f.ranks, detail }))
    let bytes = encode(f.detail)
    // Too long (a mismatch of many members): the detail is cut until it fits, never the JSON.
    for (let keep = failureBytes / 2; bytes.length > failureBytes - 4; keep = Math.floor(keep / 2)) bytes = encode(`${f.detail.slice(0, keep)}...`)
    const at = (seq % slots) * failureBytes
    new DataView(this.#bytes.buffer, this.#bytes.byteOffset + at, 4).setUint32(0, bytes.length, true)
    this.#bytes.set(bytes, at + 4)
  }

  /** The failure of `seq` (read once its state is failed). */
  failure(seq: number): FailureRecord {
    const at = (seq % slots) * failureBytes
    const length = new DataView(this.#bytes.buffer, this.#bytes.byteOffset + at, 4).getUint32(0, true)
    // Decoded from a private copy: TextDecoder does not read shared memory.
    const raw = JSON.parse(new TextDecoder().decode(this.#bytes.slice(at + 4, at + 4 + length))) as { reasons: Array<number>; op: string; ranks: Array<number>; detail: string }
    return { reasons: raw.reasons.map((r) => reasons[r] as CommError.Reason), op: raw.op, ranks: raw.ranks, detail: raw.detail }
  }
}
