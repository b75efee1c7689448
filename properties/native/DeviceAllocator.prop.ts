// The device caching allocator (cuda/src/device/caching_allocator.h) over a simulated device:
// random programs of allocations, frees, cross-stream uses, stream completions and cache
// releases, checked against a model after every step. Live blocks never overlap and fit their
// requests; the counters add up; a block used on another stream is not handed out again before
// that stream's work at free time is done; same-stream reuse needs no device allocation; out of
// memory only when the device cannot hold one more segment; and everything goes back at the end.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type { SimulatedDeviceAllocator } from "../../src/native/CpuAddon.js"
import { simulatedDeviceAllocator } from "../../src/native/SimulatedDevice.js"

const MiB = 1 << 20
const round = (bytes: number) => Math.max(512, Math.ceil(bytes / 512) * 512)
const segmentBytes = (bytes: number) => (round(bytes) <= MiB ? 2 * MiB : Math.ceil(round(bytes) / (2 * MiB)) * 2 * MiB)

type Op =
  | { readonly kind: "allocate"; readonly bytes: number; readonly stream: number }
  | { readonly kind: "free"; readonly pick: number }
  | { readonly kind: "record"; readonly pick: number; readonly stream: number }
  | { readonly kind: "complete"; readonly stream: number }
  | { readonly kind: "empty" }

const stream = fc.integer({ min: 0, max: 2 })
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("allocate" as const),
      bytes: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 1, max: MiB }), fc.integer({ min: MiB + 1, max: 9 * MiB })),
      stream,
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("record" as const), pick: fc.nat(), stream }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("complete" as const), stream }) },
  { weight: 1, arbitrary: fc.constant({ kind: "empty" as const }) },
)

interface Live {
  readonly at: number
  readonly bytes: number
  readonly stream: number
  readonly others: Set<number>
}

interface Fence {
  readonly at: number
  readonly size: number
  readonly waiting: Set<number>
}

const overlaps = (a: number, asize: number, b: number, bsize: number) => a < b + bsize && b < a + asize

const run = (device: SimulatedDeviceAllocator, capacity: number, ops: ReadonlyArray<Op>) => {
  const live: Array<Live> = []
  const fences: Array<Fence> = []
  for (const o of ops) {
    if (o.kind === "allocate") {
      const before = device.stats()
      const at = device.allocate(o.bytes, o.stream)
      if (at === null) {
        // Out of memory only when even an emptied cache leaves no room for one more segment.
        expect(capacity - device.stats().reservedBytes).toBeLessThan(segmentBytes(o.bytes))
        continue
      }
      const size = device.blockSize(at)
      expect(size).toBeGreaterThanOrEqual(round(o.bytes))
      expect(at % 512).toBe(0)
      for (const l of live) expect(overlaps(at, size, l.at, device.blockSize(l.at))).toBe(false)
      for (const f of fences) expect(overlaps(at, size, f.at, f.size)).toBe(false)
      expect(device.stats().deviceAllocations - before.deviceAllocations).toBeLessThanOrEqual(1)
      live.push({ at, bytes: o.bytes, stream: o.stream, others: new Set() })
    } else if (o.kind === "free" && live.length > 0) {
      const [l] = live.splice(o.pick % live.length, 1) as [Live]
      const size = device.blockSize(l.at)
      expect(device.free(l.at)).toBe(true)
      expect(device.free(l.at)).toBe(false)
      if (l.others.size > 0) fences.push({ at: l.at, size, waiting: new Set(l.others) })
    } else if (o.kind === "record" && live.length > 0) {
      const l = live[o.pick % live.length] as Live
      expect(device.recordStream(l.at, o.stream)).toBe(true)
      if (o.stream !== l.stream) l.others.add(o.stream)
    } else if (o.kind === "complete") {
      device.completeStream(o.stream)
      for (const f of fences) f.waiting.delete(o.stream)
      for (let i = fences.length - 1; i >= 0; i--) if ((fences[i] as Fence).waiting.size === 0) fences.splice(i, 1)
    } else if (o.kind === "empty") {
      device.emptyCache()
    }
    const s = device.stats()
    expect(s.allocatedBytes).toBe(live.reduce((a, l) => a + device.blockSize(l.at), 0))
    expect(s.reservedBytes).toBe(s.deviceUsedBytes)
    expect(s.reservedBytes).toBeGreaterThanOrEqual(s.allocatedBytes)
    expect(s.deviceUsedBytes).toBeLessThanOrEqual(capacity)
  }
  // Everything back: free the rest, complete every stream, release the cache.
  for (const l of live) expect(device.free(l.at)).toBe(true)
  for (const st of [0, 1, 2]) device.completeStream(st)
  device.emptyCache()
  const end = device.stats()
  expect([end.allocatedBytes, end.reservedBytes, end.deviceUsedBytes, end.pendingBlocks, end.liveEvents, end.segments]).toEqual([0, 0, 0, 0, 0, 0])
}

const make = (capacity: number) => simulatedDeviceAllocator(capacity) as SimulatedDeviceAllocator

describe.skipIf(simulatedDeviceAllocator(0) === undefined)("device caching allocator (simulated device)", () => {
  test("random programs keep every invariant against the model", () => {
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 48 }), fc.array(op, { minLength: 1, maxLength: 120 }), (mib, ops) => run(make(mib * MiB), mib * MiB, ops)),
      { numRuns: 200 },
    )
  })

  test("a block freed on its own stream is reused at once, with no device allocation", () => {
    const device = make(64 * MiB)
    for (const bytes of [1, 700, MiB, 3 * MiB + 5]) {
      const at = device.allocate(bytes, 0) as number
      const before = device.stats().deviceAllocations
      device.free(at)
      expect(device.allocate(bytes, 0)).toBe(at)
      expect(device.stats().deviceAllocations).toBe(before)
    }
  })

  test("a block used on another stream waits for that stream's event, then is reused", () => {
    const device = make(64 * MiB)
    const at = device.allocate(4096, 0) as number
    device.recordStream(at, 1)
    device.free(at)
    expect(device.stats().pendingBlocks).toBe(1)
    const meanwhile = device.allocate(4096, 0) as number
    expect(meanwhile).not.toBe(at)
    device.completeStream(1)
    expect(device.allocate(4096, 0)).toBe(at)
    expect(device.stats().pendingBlocks).toBe(0)
  })

  test("segments belong to their stream: another stream's request gets its own segment", () => {
    const device = make(64 * MiB)
    const a = device.allocate(1000, 0) as number
    const b = device.allocate(1000, 1) as number
    expect(device.stats().segments).toBe(2)
    expect(Math.abs(a - b)).toBeGreaterThanOrEqual(2 * MiB)
  })

  test("out of memory releases the cached segments and retries before giving up", () => {
    const device = make(8 * MiB)
    const big = device.allocate(6 * MiB, 0) as number
    device.free(big) // cached: 6 MiB still reserved
    expect(device.stats().reservedBytes).toBe(6 * MiB)
    const other = device.allocate(4 * MiB, 1) // does not fit beside it: the cache goes first
    expect(other).not.toBeNull()
    expect(device.stats().deviceReleases).toBe(1)
    expect(device.allocate(5 * MiB, 2)).toBeNull()
  })

  test("bad arguments throw a TypeError naming them", () => {
    const device = make(8 * MiB)
    expect(() => device.allocate(-1, 0)).toThrow(/bytes must be an integer >= 0/)
    expect(() => device.allocate(8, 0.5)).toThrow(/stream must be an integer >= 0/)
    expect(device.free(12345)).toBe(false)
  })
})
