/**
 * Cooperative: allReduce in two phases, so that the members of a group share the reduction.
 *
 * Reading every member's whole contribution in every member (Collective.outputFor) moves n times the
 * data per member: with 8 ranks on 2 cores that is 64 reads of each element, and memory
 * bandwidth is what bounds this machine. Here member j reduces only slice j (elements
 * [L*j/n, L*(j+1)/n)) from every contribution, writes it into its own output and into slice j
 * of its own chunk (no one else reads that slice of that chunk), and raises the chunk's ready
 * flag; then it copies every other slice i from member i's chunk once member i's flag is up.
 * About 2 reads per element per member instead of n, and the same arithmetic in the same
 * order (first part, then each later part in group order), so the same bits as Collective.outputFor.
 *
 * Only for copying mode (the contribution is a pooled chunk this thread may overwrite) and
 * large tensors (the waits cost wake-ups). A member waits with Atomics.waitAsync, never
 * spinning; the flags never wait on each other in a cycle (phase 1 reads only), so a member
 * waits only for members still in phase 1. The chunk is not reused before every member has
 * read it (its reader count), so a raised flag is never taken for the next op's.
 */
import type * as Collective from "../Collective.js"
import * as DType from "../../tensor/DType.js"
import { type Counter, readySlot } from "./Protocol.js"
import { combine, copyInto } from "../Kernels.js"

/**
 * Below this many elements the plain path is faster (one wake-up per member saved).
 * @category configuration
 */
const cooperativeFrom = 64 * 1024

interface WaitAsync {
  waitAsync(view: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> }
}

/**
 * Whether this allReduce can run cooperatively: every part is a pooled chunk (its counter
 * lives in its own header) and the tensor is large.
 * @category guards
 */
export const usable = (cs: ReadonlyArray<Collective.Contribution>, counters: ReadonlyArray<Counter | undefined>, buffers: ReadonlyArray<SharedArrayBuffer | undefined>): boolean =>
  cs.length > 1 && cs[0]?.op === "allReduce" && (cs[0]?.data.length ?? 0) >= cooperativeFrom && counters.every((c, i) => c !== undefined && c.buffer === buffers[i])

// Resolves once the flag at `slot` of `buffer` reads 1.
const raised = async (buffer: SharedArrayBuffer, slot: number): Promise<void> => {
  const view = new Int32Array(buffer, 0, slot + 1)
  while (Atomics.load(view, slot) !== 1) {
    const wait = (Atomics as unknown as WaitAsync).waitAsync(view, slot, 0)
    if (wait.async) await wait.value
  }
}

/**
 * Member j's allReduce result, computed with the others (see the file header). `cs[i].data`
 * are views into the chunks `buffers[i]`; `out` is member j's receive buffer, if any.
 * @category mapping
 */
export const allReduce = async (
  cs: ReadonlyArray<Collective.Contribution>,
  buffers: ReadonlyArray<SharedArrayBuffer>,
  j: number,
  out: DType.Storage | undefined,
): Promise<Collective.Output> => {
  const first = cs[0] as Collective.Contribution
  const n = cs.length
  const length = first.data.length
  // Every block is written below (this member's by combine, the others copied): no zeroing pass.
  const result = out ?? DType.allocateUninitialized(first.dtype, length)
  const lo = (k: number) => Math.floor((length * k) / n)
  const data = cs.map((c) => c.data)
  const mine = result.subarray(lo(j), lo(j + 1))
  combine(first.reduce ?? "sum", data, mine, lo(j))
  copyInto(data[j] as DType.Storage, lo(j), mine)
  const own = new Int32Array(buffers[j] as SharedArrayBuffer, 0, readySlot + 1)
  Atomics.store(own, readySlot, 1)
  Atomics.notify(own, readySlot)
  for (let k = 1; k < n; k++) {
    const i = (j + k) % n
    await raised(buffers[i] as SharedArrayBuffer, readySlot)
    copyInto(result, lo(i), (data[i] as DType.Storage).subarray(lo(i), lo(i + 1)))
  }
  return { data: result, shape: first.shape }
}
