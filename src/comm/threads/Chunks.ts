/**
 * Chunks: a rank's shared memory for its collective contributions (copying mode), and the
 * reader counters that say when other ranks are done with it.
 *
 * Copying mode: a contribution is copied into a pooled chunk when the op is issued (the
 * snapshot that keeps a rank that mutates its tensor afterwards from changing what others
 * receive) and stays there until every member has read it. Fresh buffers are slow to fill
 * (every page faults on first touch: 0.4-2 GB/s here against ~25 GB/s for a warm one), so
 * chunks are reused: the chunk's header counts the readers still to come; each reader
 * decrements it with Atomics when done, and the owner takes the chunk again once it reads 0.
 * Nobody waits on it: a chunk still being read is skipped and another one used or made.
 *
 * Zero-copy mode reads the tensor's own SharedArrayBuffer instead; its readers are counted in
 * the group's control block (ControlBlock), where the owner waits for them.
 */
import * as DType from "../../tensor/DType.js"
import { type Counter, headerBytes, readersSlot, readySlot } from "./Protocol.js"

interface Chunk {
  readonly buffer: SharedArrayBuffer
  readonly header: Int32Array
  /** Data bytes (after the header). */
  readonly capacity: number
  readonly counter: Counter
  /** The last view handed out (the same op is usually issued again and again). */
  view: DType.Storage | undefined
}

const minCapacity = 4096

// Free chunks beyond this many bytes are dropped (busy ones stay, whatever their size).
const keepBytes = 512 * 1024 * 1024

/**
 * Where a contribution is to be written.
 * @category models
 */
export interface Placed {
  readonly buffer: SharedArrayBuffer
  readonly offset: number
  readonly view: DType.Storage
  readonly counter: Counter
}

/**
 * The chunk pool of one rank.
 * @category models
 */
export class ChunkPool {
  #chunks: Array<Chunk> = []
  #byBuffer = new Map<SharedArrayBuffer, Chunk>()

  /**
   * A free chunk for `length` elements of `dtype`, marked as awaited by `readers` readers (the
   * owner then writes the data, before it publishes the part). Until marked the chunk read as
   * free, which is harmless: only this thread takes chunks of this pool.
   */
  take(dtype: DType.DType, length: number, readers: number): Placed {
    const bytes = length * DType.bytesPer(dtype)
    let best: Chunk | undefined
    for (const c of this.#chunks) {
      if (c.capacity >= bytes && Atomics.load(c.header, readersSlot) === 0 && (best === undefined || c.capacity < best.capacity)) best = c
    }
    if (best === undefined) best = this.#make(bytes)
    let view = best.view
    if (view === undefined || view.length !== length || view instanceof Float32Array !== (dtype === "float32")) {
      view = dtype === "float32" ? new Float32Array(best.buffer, headerBytes, length) : new Float64Array(best.buffer, headerBytes, length)
      best.view = view
    }
    Atomics.store(best.header, readySlot, 0)
    Atomics.store(best.header, readersSlot, readers)
    return { buffer: best.buffer, offset: headerBytes, view, counter: best.counter }
  }

  /** Frees every chunk (between jobs: no reader of the previous job is left). */
  reset(): void {
    for (const c of this.#chunks) Atomics.store(c.header, readersSlot, 0)
  }

  /**
   * Keeps at most `bytes` of chunks, dropping the largest first (at the end of a job, so that
   * an idle worker holds little memory). Safe even for a chunk still being read: a reader
   * holds its own reference to the memory, and a dropped chunk is never handed out again.
   */
  shrink(bytes: number): void {
    let total = this.#chunks.reduce((a, c) => a + c.capacity, 0)
    for (const c of [...this.#chunks].sort((a, b) => b.capacity - a.capacity)) {
      if (total <= bytes) break
      total -= c.capacity
      this.#drop(c)
    }
  }

  #drop(c: Chunk): void {
    this.#chunks.splice(this.#chunks.indexOf(c), 1)
    this.#byBuffer.delete(c.buffer)
  }

  #make(bytes: number): Chunk {
    let capacity = minCapacity
    while (capacity < bytes) capacity *= 2
    // Drops free chunks, largest first, until the pool plus the new one fits in keepBytes.
    let total = capacity + this.#chunks.reduce((a, c) => a + c.capacity, 0)
    const free = this.#chunks.filter((c) => Atomics.load(c.header, readersSlot) === 0).sort((a, b) => b.capacity - a.capacity)
    for (const c of free) {
      if (total <= keepBytes) break
      total -= c.capacity
      this.#drop(c)
    }
    const buffer = new SharedArrayBuffer(headerBytes + capacity)
    const chunk: Chunk = { buffer, header: new Int32Array(buffer, 0, readySlot + 1), capacity, counter: { buffer, index: readersSlot }, view: undefined }
    this.#chunks.push(chunk)
    this.#byBuffer.set(buffer, chunk)
    return chunk
  }
}

/**
 * Frees a counter at once (its op failed: nobody will read the part).
 * @category mapping
 */
export const clear = (c: Counter): void => {
  Atomics.store(new Int32Array(c.buffer, 0, c.index + 1), c.index, 0)
}
