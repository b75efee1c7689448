/**
 * SnapshotPool: the storage of contributions' snapshots in copying mode, reused from meeting to
 * meeting. A copying transport copies every contribution when it is issued (so a rank that
 * writes its buffer afterwards cannot change what others receive) and reads the copy once, when
 * the meeting completes; no result aliases it (Collective.outputFor writes fresh or receive
 * buffers). So the copy is dead as soon as the meeting's results are computed, and the
 * rendezvous gives it back here. Without the pool every collective of a training step made its
 * snapshots in fresh memory, which V8 frees late: a copying 8-rank all-to-all of 1 MiB per peer
 * moved 0.5 GB/s where the zero-copy mode moved 16 (bench comm, 2026-12-01).
 *
 * Only storage taken here is ever given back (`release` ignores anything else, such as a
 * zero-copy contribution, which is the caller's own buffer), each piece at most once. Small
 * snapshots come from DType's slabs as before; the pool keeps at most `keptBytes` idle.
 */
import * as DType from "../tensor/DType.js"

/** Snapshots smaller than this come from DType's slabs (cheap already). */
const pooledFrom = 256 * 1024

/** The most idle bytes kept; beyond it a given-back buffer is left to the garbage collector. */
const keptBytes = 1024 * 1024 * 1024

const idleByKey = new Map<string, Array<DType.Storage>>()
/** Every buffer this pool made. */
const made = new WeakSet<DType.Storage>()
/** The ones idle now (given back, not handed out again yet). */
const idle = new WeakSet<DType.Storage>()
let idleBytes = 0

const keyOf = (dtype: DType.DType, length: number): string => `${dtype}:${length}`

/**
 * A copy of `data` in storage of its own, from the pool when one of that dtype and length is
 * idle.
 * @category constructors
 */
export const copyOf = (data: DType.Storage): DType.Storage => {
  if (data.byteLength < pooledFrom) return DType.copyOf(data)
  const dtype = DType.of(data)
  const reused = idleByKey.get(keyOf(dtype, data.length))?.pop()
  if (reused !== undefined) {
    idle.delete(reused)
    idleBytes -= reused.byteLength
    reused.set(data)
    return reused
  }
  const fresh = DType.allocateUninitialized(dtype, data.length)
  made.add(fresh)
  fresh.set(data)
  return fresh
}

/**
 * Gives back a snapshot whose meeting is over; anything the pool did not make, or that is idle
 * already, is left alone.
 * @category mutations
 */
export const release = (data: DType.Storage): void => {
  if (!made.has(data) || idle.has(data) || idleBytes + data.byteLength > keptBytes) return
  const key = keyOf(DType.of(data), data.length)
  const list = idleByKey.get(key)
  if (list === undefined) idleByKey.set(key, [data])
  else list.push(data)
  idle.add(data)
  idleBytes += data.byteLength
}

/**
 * The bytes idle in the pool now (for tests and logs).
 * @category getters
 */
export const idleSize = (): number => idleBytes
