// Slab views (tensor/Slabs.ts, through DType and StorageRecycler): storage of 64 KB or less is a
// view of a shared slab; a view handed back counts toward its slab, and a full slab whose views
// have all come back is carved again, while a slab with one view still out never is. In the
// checking mode the suites run in, a slab whose views are all back is detached, so any view of
// it reads empty: a use after hand-back cannot read the next owner's values.
import fc from "fast-check"
import { afterEach, describe, expect, test } from "vitest"
import * as DType from "../../src/tensor/DType.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"

afterEach(() => StorageRecycler.clear())

/**
 * Carves views of `floats` elements (each 4 KB-64 KB: the 256 KB tier) until a new slab opens:
 * the views of a whole slab (the first one carved since the last new slab) and the next slab's first.
 */
const fillSlab = (floats: number): { readonly views: Array<Float32Array>; readonly next: Float32Array } => {
  const first = carveToNewSlab(floats)
  const views = [first]
  for (;;) {
    const v = DType.allocateUninitialized("float32", floats) as Float32Array
    if (v.buffer !== first.buffer) return { views, next: v }
    views.push(v)
  }
}

/** The first view of a new slab (whatever the tier's open slab held before). */
const carveToNewSlab = (floats: number): Float32Array => {
  const open = DType.allocateUninitialized("float32", floats) as Float32Array
  for (;;) {
    const v = DType.allocateUninitialized("float32", floats) as Float32Array
    if (v.buffer !== open.buffer) return v
  }
}

describe("Slabs", () => {
  test("a slab comes back only when every view carved from it has been handed back, and then it is detached and carved again", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1025, max: 16384 }), fc.boolean(), (floats, keepOne) => {
        StorageRecycler.clear()
        const { views, next } = fillSlab(floats)
        views.forEach((v, i) => v.fill(i))
        const reusedBefore = StorageRecycler.stats().reusedSlabs
        const out = keepOne ? views.slice(1) : views
        for (const v of out) expect(StorageRecycler.recycle(v)).toBe(true)
        // Handed back twice, or a part of a view: declined.
        expect(StorageRecycler.recycle(out[0] as Float32Array)).toBe(false)
        if (keepOne) {
          // One view still out: the slab stays as it is, that view keeps its values.
          expect((views[0] as Float32Array).length).toBe(floats)
          expect((views[0] as Float32Array).every((x) => x === 0)).toBe(true)
        } else for (const v of views) expect(v.length).toBe(0)
        // The open slab fills; the next one is the slab that came back, if it did.
        for (let v = next; v.buffer === next.buffer; ) v = DType.allocateUninitialized("float32", floats) as Float32Array
        expect(StorageRecycler.stats().reusedSlabs - reusedBefore).toBe(keepOne ? 0 : 1)
      }),
      { numRuns: 40 },
    )
  })

  test("a reused slab's views are new storage: zeroed when asked, poisoned otherwise in the suites", () => {
    const { views } = fillSlab(4096)
    for (const v of views) v.fill(7)
    for (const v of views) StorageRecycler.recycle(v)
    fillSlab(4096)
    const zeroed = DType.allocate("float32", 4096)
    const raw = DType.allocateUninitialized("float32", 4096)
    expect(zeroed.every((x) => x === 0)).toBe(true)
    expect(raw.every((x) => Number.isNaN(x))).toBe(true)
  })

  test("a kept view is not taken, nor any view sharing its bytes; once let go it is taken if it was offered meanwhile", () => {
    const v = DType.allocateUninitialized("float32", 2048)
    StorageRecycler.keep(v)
    expect(StorageRecycler.recycle(v)).toBe(false)
    expect(v.length).toBe(2048)
    const before = StorageRecycler.stats().recycled
    StorageRecycler.letGo(v)
    expect(StorageRecycler.stats().recycled).toBe(before + 1)
    // A view of another slab's neighbour is unaffected by a keep on this one.
    const w = DType.allocateUninitialized("float32", 2048)
    StorageRecycler.keep(w)
    const u = DType.allocateUninitialized("float32", 2048)
    expect(StorageRecycler.recycle(u)).toBe(true)
    StorageRecycler.letGo(w)
    expect(w.length).toBe(2048)
  })
})
