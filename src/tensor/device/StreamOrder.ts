/**
 * StreamOrder: which waits keep a device's streams correct (issue 15's host-side ordering).
 *
 * A rank computes on one stream and runs each group's collectives on that group's stream, so
 * work on different streams may overlap. Work on one stream runs in the order it was queued;
 * across streams only events order it. For every op queued on stream S that reads buffers R and
 * writes buffers W, `enqueue` returns the events S must wait for first:
 *   read after write    the last write of each r in R, when another stream made it
 *                       (a collective waits for the compute that produced its input; compute
 *                       waits for the collective whose output it reads);
 *   write after write   the last write of each w in W on another stream;
 *   write after read    every read of each w in W on another stream since its last write
 *                       (a buffer is not overwritten while another stream still reads it).
 * Same-stream dependencies need no wait, and a wait is skipped when S already waited for that
 * stream at the same or a later point (events of one stream complete in order). The op then
 * records one event on S that later ops can wait for. `lastUses` names the streams whose work
 * on a buffer must finish before its memory is reused: what the caching allocator's
 * record_stream needs when the buffer is freed (cuda/src/device/caching_allocator.h).
 *
 * Events are (stream, sequence) pairs: the n-th event recorded on a stream. The device layer
 * maps them to cudaEventRecord / cudaStreamWaitEvent.
 */

/**
 * The n-th event recorded on `stream` (from 1).
 * @category models
 */
export interface StreamEvent {
  readonly stream: number
  readonly seq: number
}

interface BufferState {
  lastWrite: StreamEvent | undefined
  /** The latest read on each stream since the last write. */
  readonly reads: Map<number, number>
}

/**
 * The tracker of one rank's streams.
 * @category models
 */
export interface StreamOrder {
  /** The waits an op on `stream` reading `reads` and writing `writes` needs, and its own event. */
  readonly enqueue: (stream: number, reads: ReadonlyArray<number>, writes: ReadonlyArray<number>) => { readonly waits: ReadonlyArray<StreamEvent>; readonly event: StreamEvent }
  /** The latest event of each stream that used `buffer` (read or wrote it) since its last write. */
  readonly lastUses: (buffer: number) => ReadonlyArray<StreamEvent>
  /** Forgets a freed buffer. */
  readonly release: (buffer: number) => void
}

/**
 * A tracker with no work queued yet.
 * @category constructors
 */
export const make = (): StreamOrder => {
  const buffers = new Map<number, BufferState>()
  const recorded = new Map<number, number>()
  // waited.get(s).get(t): the latest event of stream t that stream s has waited for.
  const waited = new Map<number, Map<number, number>>()
  const state = (b: number): BufferState => {
    let s = buffers.get(b)
    if (s === undefined) buffers.set(b, (s = { lastWrite: undefined, reads: new Map() }))
    return s
  }
  const enqueue = (stream: number, reads: ReadonlyArray<number>, writes: ReadonlyArray<number>) => {
    const needed = new Map<number, number>()
    const need = (e: StreamEvent | undefined) => {
      if (e === undefined || e.stream === stream) return
      if ((needed.get(e.stream) ?? 0) < e.seq) needed.set(e.stream, e.seq)
    }
    for (const r of reads) need(state(r).lastWrite)
    for (const w of writes) {
      const s = state(w)
      need(s.lastWrite)
      for (const [t, seq] of s.reads) need({ stream: t, seq })
    }
    const mine = waited.get(stream) ?? new Map<number, number>()
    waited.set(stream, mine)
    const waits: Array<StreamEvent> = []
    for (const [t, seq] of [...needed].sort((a, b) => a[0] - b[0])) {
      if ((mine.get(t) ?? 0) >= seq) continue
      mine.set(t, seq)
      waits.push({ stream: t, seq })
    }
    const event = { stream, seq: (recorded.get(stream) ?? 0) + 1 }
    recorded.set(stream, event.seq)
    for (const r of reads) state(r).reads.set(stream, event.seq)
    for (const w of writes) {
      const s = state(w)
      s.lastWrite = event
      s.reads.clear()
    }
    return { waits, event }
  }
  const lastUses = (buffer: number): ReadonlyArray<StreamEvent> => {
    const s = buffers.get(buffer)
    if (s === undefined) return []
    const latest = new Map<number, number>(s.reads)
    if (s.lastWrite !== undefined && (latest.get(s.lastWrite.stream) ?? 0) < s.lastWrite.seq) latest.set(s.lastWrite.stream, s.lastWrite.seq)
    return [...latest].sort((a, b) => a[0] - b[0]).map(([stream, seq]) => ({ stream, seq }))
  }
  return { enqueue, lastUses, release: (buffer) => void buffers.delete(buffer) }
}
