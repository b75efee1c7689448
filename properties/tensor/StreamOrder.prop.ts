// StreamOrder: random programs of ops on 1-3 streams over a few buffers, run by a simulated
// device that interleaves the streams at random (each stream in its own order, a wait holding
// its stream until the waited event's op has run): every op reads exactly what it reads when
// the program runs in order, the buffers end as they do in order, nothing deadlocks, and when
// the events `lastUses` names have completed no op touching the buffer is left.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as StreamOrder from "../../src/tensor/device/StreamOrder.js"

interface Op {
  readonly stream: number
  readonly reads: ReadonlyArray<number>
  readonly writes: ReadonlyArray<number>
}

const buffers = 4
const op = (streams: number): fc.Arbitrary<Op> =>
  fc.record({
    stream: fc.integer({ min: 0, max: streams - 1 }),
    reads: fc.uniqueArray(fc.integer({ min: 0, max: buffers - 1 }), { maxLength: 3 }),
    writes: fc.uniqueArray(fc.integer({ min: 0, max: buffers - 1 }), { minLength: 1, maxLength: 2 }),
  })

const program = fc.integer({ min: 1, max: 3 }).chain((streams) => fc.array(op(streams), { minLength: 1, maxLength: 40 }))

/** What op i writes, from what it read: distinct for every op and every input. */
const value = (i: number, read: ReadonlyArray<number>): number => read.reduce((a, v) => (a * 31 + v) % 1_000_003, i + 1)

const inOrder = (ops: ReadonlyArray<Op>) => {
  const memory = new Array<number>(buffers).fill(0)
  const seen = ops.map((o, i) => {
    const read = o.reads.map((b) => memory[b] as number)
    for (const w of o.writes) memory[w] = value(i, read)
    return read
  })
  return { seen, memory }
}

const simulate = (ops: ReadonlyArray<Op>, seed: number) => {
  const order = StreamOrder.make()
  const queued = ops.map((o, i) => ({ i, ...o, ...order.enqueue(o.stream, o.reads, o.writes) }))
  const lastUses = Array.from({ length: buffers }, (_, b) => order.lastUses(b))
  const streams = [...new Set(ops.map((o) => o.stream))]
  const queues = new Map(streams.map((s) => [s, queued.filter((q) => q.stream === s)]))
  const done = new Map<number, number>(streams.map((s) => [s, 0]))
  const complete = (e: StreamOrder.StreamEvent) => (done.get(e.stream) ?? 0) >= e.seq
  const memory = new Array<number>(buffers).fill(0)
  const seen = new Array<ReadonlyArray<number>>(ops.length)
  const ran = new Set<number>()
  let rng = seed >>> 0 || 1
  for (let step = 0; step < ops.length; step++) {
    const ready = streams.filter((s) => {
      const head = (queues.get(s) as Array<(typeof queued)[number]>)[0]
      return head?.waits.every(complete) === true
    })
    expect(ready.length, "a stream can always move (no deadlock)").toBeGreaterThan(0)
    rng = (rng * 1103515245 + 12345) >>> 0
    const s = ready[rng % ready.length] as number
    const q = (queues.get(s) as Array<(typeof queued)[number]>).shift() as (typeof queued)[number]
    const read = q.reads.map((b) => memory[b] as number)
    for (const w of q.writes) memory[w] = value(q.i, read)
    seen[q.i] = read
    ran.add(q.i)
    done.set(s, q.event.seq)
    // A buffer whose last uses have all completed has no op left that touches it.
    for (let b = 0; b < buffers; b++) {
      const uses = lastUses[b] as ReadonlyArray<StreamOrder.StreamEvent>
      if (uses.length > 0 && uses.every(complete)) {
        ops.forEach((o, i) => {
          if (o.reads.includes(b) || o.writes.includes(b)) expect(ran.has(i)).toBe(true)
        })
      }
    }
  }
  return { seen, memory, queued }
}

describe("StreamOrder", () => {
  test("any interleaving the waits allow reads and ends as the program in order", () => {
    fc.assert(
      fc.property(program, fc.array(fc.integer(), { minLength: 3, maxLength: 3 }), (ops, seeds) => {
        const want = inOrder(ops)
        for (const seed of seeds) {
          const got = simulate(ops, seed)
          expect(got.seen).toEqual(want.seen)
          expect(got.memory).toEqual(want.memory)
        }
      }),
      { numRuns: 400 },
    )
  })

  test("one stream needs no waits; a wait is never repeated for an event already waited for", () => {
    fc.assert(
      fc.property(program, (ops) => {
        const order = StreamOrder.make()
        const waited = new Map<string, number>()
        for (const o of ops) {
          const { waits } = order.enqueue(o.stream, o.reads, o.writes)
          for (const w of waits) {
            expect(w.stream).not.toBe(o.stream)
            const key = `${o.stream}<-${w.stream}`
            expect(w.seq).toBeGreaterThan(waited.get(key) ?? 0)
            waited.set(key, w.seq)
          }
        }
        if (new Set(ops.map((o) => o.stream)).size === 1) expect(waited.size).toBe(0)
      }),
      { numRuns: 300 },
    )
  })

  test("a collective reading what compute wrote waits for it; compute reading its output waits back", () => {
    const order = StreamOrder.make()
    const compute = 0
    const group = 1
    expect(order.enqueue(compute, [], [0]).waits).toEqual([])
    expect(order.enqueue(group, [0], [1]).waits).toEqual([{ stream: compute, seq: 1 }])
    expect(order.enqueue(compute, [1], [2]).waits).toEqual([{ stream: group, seq: 1 }])
    // Overwriting buffer 0, which the collective read: wait for its read (already waited: none).
    expect(order.enqueue(compute, [], [0]).waits).toEqual([])
    expect(order.lastUses(1)).toEqual([
      { stream: compute, seq: 2 },
      { stream: group, seq: 1 },
    ])
  })
})
