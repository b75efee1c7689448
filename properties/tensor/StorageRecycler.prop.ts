// The storage recycler (tensor/StorageRecycler.ts) takes back only the storage it handed out
// (DType's unshared allocations larger than a slab's, each in a buffer of its size class; slab
// views are Slabs.prop.ts's), hands a
// taken buffer out again to a request of its class or of one up to `reach` times below (a miss
// while the pool holds any gets `headroom` for a request that grows), and in the
// checking mode the test suites run in (PLEAT_POISON_UNINITIALIZED=1) detaches every view of a
// recycled buffer, so a reader that broke the promise sees an empty array.
import { constants } from "node:buffer"
import fc from "fast-check"
import { afterEach, describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as DType from "../../src/tensor/DType.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

afterEach(() => StorageRecycler.clear())

/** float32 elements of the smallest storage in a buffer of its own. */
const least = Math.ceil(StorageRecycler.minBytes / 4)
const floats = fc.integer({ min: least, max: 3 * least })

describe("StorageRecycler", () => {
  test("the suites run in checking mode", () => {
    expect(process.env.PLEAT_POISON_UNINITIALIZED).toBe("1")
  })

  test("size classes: at most a sixteenth above the request, and a class is its own class", () => {
    fc.assert(
      fc.property(fc.integer({ min: StorageRecycler.minBytes, max: 2 ** 34 }), (bytes) => {
        const c = StorageRecycler.classOf(bytes)
        expect(c).toBeGreaterThanOrEqual(bytes)
        expect(c).toBeLessThanOrEqual(bytes * (1 + 1 / 16))
        expect(StorageRecycler.classOf(c)).toBe(c)
        expect(StorageRecycler.classOf(bytes + 1)).toBeGreaterThanOrEqual(c)
      }),
    )
  })

  test("a new buffer's length: the request's class (with headroom, the class of headroom times it), never past the cap for a request that fits under it", () => {
    fc.assert(
      fc.property(fc.integer({ min: StorageRecycler.minBytes, max: 2 ** 34 }), fc.boolean(), fc.integer({ min: StorageRecycler.minBytes, max: 2 ** 34 }), (bytes, room, cap) => {
        const length = StorageRecycler.lengthFor(bytes, room, cap)
        const wanted = StorageRecycler.classOf(room ? Math.ceil(bytes * StorageRecycler.headroom) : bytes)
        expect(length).toBeGreaterThanOrEqual(bytes)
        if (bytes <= cap) expect(length).toBe(Math.min(wanted, cap))
        // A request over the cap is asked for as it is (Node refuses it, MemoryFloor says why first).
        else expect(length).toBe(bytes)
      }),
    )
    // Node's own cap by default: 3.5 GiB asked for again once the pool holds storage.
    expect(StorageRecycler.lengthFor(3.5 * 2 ** 30, true)).toBe(constants.MAX_LENGTH)
  })

  test("a request over Node's largest Buffer is a ConfigError naming its bytes and the fix, before anything is allocated", () => {
    for (const [dtype, size] of [
      ["float32", 2 ** 30 + 1],
      ["float64", 2 ** 29 + 1],
    ] as const) {
      let thrown: unknown
      try {
        StorageRecycler.allocate(dtype, size, false)
      } catch (error) {
        thrown = error
      }
      expect(ConfigError.isConfigError(thrown)).toBe(true)
      const e = thrown as ConfigError.ConfigError
      expect([e.field, e.value]).toEqual(["tensor", size * DType.bytesPer(dtype)])
      expect(e.message).toMatch(/are more than one buffer holds \(4\.0 GiB\); fix: fewer tokens a micro-batch on each rank \(a shorter --seq/)
    }
  })

  test("a recycled buffer serves the next request of its class or of one up to `reach` times below, and its old views are detached", () => {
    fc.assert(
      fc.property(floats, fc.constantFrom<DType.DType>("float32", "float64"), fc.boolean(), floats, (n, dtype, zeroed, m) => {
        StorageRecycler.clear()
        const storage = DType.allocateUninitialized(dtype, n)
        const size = storage.buffer.byteLength
        expect(size).toBe(StorageRecycler.classOf(n * DType.bytesPer(dtype)))
        storage.fill(3)
        const alias = new Uint8Array(storage.buffer)
        const before = StorageRecycler.stats()
        expect(StorageRecycler.recycle(storage)).toBe(true)
        // Every view of the buffer is empty now: a use after recycling cannot read or write the memory.
        expect(storage.length).toBe(0)
        expect(alias.length).toBe(0)
        expect(StorageRecycler.stats().pooledBytes).toBe(before.pooledBytes + size)
        // A request of m float32s gets it when its class is the buffer's or up to `reach` times below.
        const own = StorageRecycler.classOf(4 * m)
        const fits = own <= size && size <= own * StorageRecycler.reach
        const again = zeroed ? DType.allocate("float32", m) : DType.allocateUninitialized("float32", m)
        expect(again.length).toBe(m)
        expect(StorageRecycler.stats().reused).toBe(before.reused + (fits ? 1 : 0))
        expect(StorageRecycler.stats().pooledBytes).toBe(before.pooledBytes + (fits ? 0 : size))
        // A miss while the pool holds a buffer gets room to grow: the class of `headroom` times the request.
        expect(again.buffer.byteLength).toBe(fits ? size : StorageRecycler.classOf(Math.ceil(4 * m * StorageRecycler.headroom)))
        // Zeroed storage is zeroed; uninitialised storage is poisoned in the suites, not the old values.
        if (zeroed) expect(again.every((v) => v === 0)).toBe(true)
        else expect(again.every((v) => Number.isNaN(v))).toBe(true)
      }),
      { numRuns: 30 },
    )
  })

  test("of the pooled buffers that can serve a request, the smallest does", () => {
    fc.assert(
      fc.property(floats, fc.array(fc.double({ min: 1, max: 3, noNaN: true }), { minLength: 1, maxLength: 5 }), (m, factors) => {
        StorageRecycler.clear()
        const own = StorageRecycler.classOf(4 * m)
        const pooled = factors.map((f) => DType.allocateUninitialized("float32", Math.ceil(m * f)))
        const sizes = pooled.map((p) => p.buffer.byteLength)
        for (const p of pooled) expect(StorageRecycler.recycle(p)).toBe(true)
        const serving = sizes.filter((b) => own <= b && b <= own * StorageRecycler.reach)
        const got = DType.allocateUninitialized("float32", m)
        expect(got.buffer.byteLength).toBe(serving.length > 0 ? Math.min(...serving) : StorageRecycler.classOf(Math.ceil(4 * m * StorageRecycler.headroom)))
      }),
      { numRuns: 30 },
    )
  })

  test("headroom: before any hand-back a request gets its own class; after a miss with a pooled buffer, a request up to `headroom` times larger is served by the new buffer", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2 * least, max: 6 * least }), fc.double({ min: 1, max: 1.25, noNaN: true }), (m, grow) => {
        StorageRecycler.clear()
        const first = DType.allocateUninitialized("float32", m)
        expect(first.buffer.byteLength).toBe(StorageRecycler.classOf(4 * m))
        // Something is handed back: a buffer of its own too small for the requests below.
        const small = DType.allocateUninitialized("float32", least)
        const smallBytes = small.buffer.byteLength
        expect(StorageRecycler.recycle(small)).toBe(true)
        const missed = DType.allocateUninitialized("float32", m)
        expect(missed.buffer.byteLength).toBe(StorageRecycler.classOf(Math.ceil(4 * m * StorageRecycler.headroom)))
        expect(StorageRecycler.recycle(missed)).toBe(true)
        const before = StorageRecycler.stats()
        const larger = DType.allocateUninitialized("float32", Math.floor(m * grow))
        expect(StorageRecycler.stats().reused).toBe(before.reused + 1)
        expect(StorageRecycler.stats().pooledBytes).toBe(smallBytes)
        expect(larger.length).toBe(Math.floor(m * grow))
      }),
      { numRuns: 30 },
    )
  })

  test("shared and partial storage, and storage made elsewhere, is declined and stays usable", () => {
    fc.assert(
      fc.property(floats, (n) => {
        const shared = DType.allocate("float32", n, true)
        expect(StorageRecycler.recycle(shared)).toBe(false)
        const whole = DType.allocateUninitialized("float32", n + 16)
        const part = whole.subarray(16)
        expect(StorageRecycler.recycle(part)).toBe(false)
        expect(StorageRecycler.recycle(whole.subarray(0, n))).toBe(false)
        expect(StorageRecycler.recycle(new Float32Array(whole.buffer, 0, n + 16))).toBe(false)
        expect(StorageRecycler.recycle(new Float32Array(n))).toBe(false)
        expect(part.length).toBe(n)
        expect(whole.length).toBe(n + 16)
        expect(StorageRecycler.stats().pooledBytes).toBe(0)
      }),
      { numRuns: 12 },
    )
  })

  test("the pool keeps at most capBytes", () => {
    const bytes = 64 * 2 ** 20
    const fits = Math.floor(StorageRecycler.capBytes / bytes)
    const storages = Array.from({ length: fits + 2 }, () => DType.allocateUninitialized("float32", bytes / 4))
    const results = storages.map((s) => StorageRecycler.recycle(s))
    expect(results.filter((r) => r)).toHaveLength(fits)
    expect(results.slice(fits)).toEqual([false, false])
    expect(StorageRecycler.stats().pooledBytes).toBe(fits * bytes)
  })

  test("tensors on a tape are declined", () => {
    const n = least
    const plain = Tensor.fromArray(new Float32Array(n), [n])
    const recorded = Tape.make().parameter(Tensor.fromArray(new Float32Array(n), [n]))
    expect(StorageRecycler.recycleTensor(recorded)).toBe(false)
    expect(recorded.data.length).toBe(n)
    expect(StorageRecycler.recycleTensor(plain)).toBe(true)
  })
})
