// The worked examples of semantics.md sections 1.6 to 1.8, reproduced exactly.
import { describe, expect, test } from "vitest"
import * as Families from "../../src/mapping/Families.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i)
const pairs = (step: number, starts: ReadonlyArray<number>) => starts.map((s) => [s, s + step])
const singletons = (n: number) => range(0, n - 1).map((r) => [r])

describe("worked example A: W=16 tp 2 cp 2 pp 2 (dp 2), etp 1 ep 4 (edp 2)", () => {
  const config = ParallelConfig.make({ world: 16, tp: 2, cp: 2, pp: 2, ep: 4, etp: 1 })
  const f = Families.all(config)

  test("sizes", () => {
    expect(config.sizes).toEqual({ tp: 2, cp: 2, dp: 2, pp: 2, etp: 1, ep: 4, edp: 2 })
  })

  test("coordinates per rank", () => {
    const table = [
      [0, 0, 0, 0, 0, 0, 0],
      [1, 0, 0, 0, 0, 1, 0],
      [0, 1, 0, 0, 0, 2, 0],
      [1, 1, 0, 0, 0, 3, 0],
      [0, 0, 1, 0, 0, 0, 1],
      [1, 0, 1, 0, 0, 1, 1],
      [0, 1, 1, 0, 0, 2, 1],
      [1, 1, 1, 0, 0, 3, 1],
    ]
    const fold = Folding.make(config)
    for (let rank = 0; rank < 16; rank++) {
      const p = Folding.place(fold, rank)
      const row = table[rank % 8] as Array<number>
      expect([p.tp, p.cp, p.dp, p.pp, p.etp, p.ep, p.edp]).toEqual([row[0], row[1], row[2], rank < 8 ? 0 : 1, row[4], row[5], row[6]])
    }
  })

  test("dense groups", () => {
    expect(f.tp).toEqual(pairs(1, [0, 2, 4, 6, 8, 10, 12, 14]))
    expect(f.cp).toEqual(pairs(2, [0, 1, 4, 5, 8, 9, 12, 13]))
    expect(f.dp).toEqual(pairs(4, [0, 1, 2, 3, 8, 9, 10, 11]))
    expect(f["dp-cp"]).toEqual([
      [0, 2, 4, 6],
      [1, 3, 5, 7],
      [8, 10, 12, 14],
      [9, 11, 13, 15],
    ])
    expect(f.pp).toEqual(pairs(8, range(0, 7)))
    expect(f["tp-pp"]).toEqual([
      [0, 1, 8, 9],
      [2, 3, 10, 11],
      [4, 5, 12, 13],
      [6, 7, 14, 15],
    ])
    expect(f["tp-cp"]).toEqual([range(0, 3), range(4, 7), range(8, 11), range(12, 15)])
    expect(f["tp-dp"]).toEqual([
      [0, 1, 4, 5],
      [2, 3, 6, 7],
      [8, 9, 12, 13],
      [10, 11, 14, 15],
    ])
    expect(f["tp-dp-cp"]).toEqual([range(0, 7), range(8, 15)])
    expect(f.embedding).toEqual(pairs(8, range(0, 7)))
  })

  test("expert groups: the ep group is the attention tp x cp group", () => {
    expect(f.etp).toEqual(singletons(16))
    expect(f.ep).toEqual([range(0, 3), range(4, 7), range(8, 11), range(12, 15)])
    expect(f.edp).toEqual(pairs(4, [0, 1, 2, 3, 8, 9, 10, 11]))
    expect(f["etp-ep"]).toEqual(f.ep)
    expect(f["etp-ep-pp"]).toEqual([
      [0, 1, 2, 3, 8, 9, 10, 11],
      [4, 5, 6, 7, 12, 13, 14, 15],
    ])
    expect(f.ep).toEqual(f["tp-cp"])
  })
})

describe("worked example B: same world, etp = tp = 2, ep 2 (edp 2)", () => {
  const config = ParallelConfig.make({ world: 16, tp: 2, cp: 2, pp: 2, ep: 2 })
  const f = Families.all(config)

  test("etp defaults to tp and every output can say so", () => {
    expect(config.sizes.etp).toBe(2)
    expect(config.etpGiven).toBe(false)
  })

  test("expert groups and coordinates", () => {
    expect(f.etp).toEqual(pairs(1, [0, 2, 4, 6, 8, 10, 12, 14]))
    expect(f.ep).toEqual(pairs(2, [0, 1, 4, 5, 8, 9, 12, 13]))
    expect(f.edp).toEqual(pairs(4, [0, 1, 2, 3, 8, 9, 10, 11]))
    expect(f["etp-ep"]).toEqual([range(0, 3), range(4, 7), range(8, 11), range(12, 15)])
    expect(f["etp-ep-pp"]).toEqual([
      [0, 1, 2, 3, 8, 9, 10, 11],
      [4, 5, 6, 7, 12, 13, 14, 15],
    ])
    const fold = Folding.make(config)
    const expected = [
      [0, 0, 0],
      [1, 0, 0],
      [0, 1, 0],
      [1, 1, 0],
      [0, 0, 1],
      [1, 0, 1],
      [0, 1, 1],
      [1, 1, 1],
    ]
    for (let rank = 0; rank < 16; rank++) {
      const e = Folding.expertCoordinates(fold, rank)
      expect([e.etp, e.ep, e.edp]).toEqual(expected[rank % 8])
    }
  })
})

describe("worked example C: etp larger than tp: W=16 tp 2 cp 2 pp 2, etp 4 ep 2 (edp 1)", () => {
  const f = Families.all(ParallelConfig.make({ world: 16, tp: 2, cp: 2, pp: 2, ep: 2, etp: 4 }))

  test("expert groups: etp spans attention tp x cp", () => {
    expect(f.etp).toEqual([range(0, 3), range(4, 7), range(8, 11), range(12, 15)])
    expect(f.ep).toEqual(pairs(4, [0, 1, 2, 3, 8, 9, 10, 11]))
    expect(f.edp).toEqual(singletons(16))
    expect(f["etp-ep"]).toEqual([range(0, 7), range(8, 15)])
    expect(f["etp-ep-pp"]).toEqual([range(0, 15)])
  })
})

describe("extra examples D and E", () => {
  test("D: W=8 tp 2 (dp 4), etp 1 ep 4 (edp 2)", () => {
    const f = Families.all(ParallelConfig.make({ world: 8, tp: 2, ep: 4, etp: 1 }))
    expect(f.tp).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ])
    expect(f.dp).toEqual([
      [0, 2, 4, 6],
      [1, 3, 5, 7],
    ])
    expect(f.ep).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ])
    expect(f.edp).toEqual([
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ])
    expect(f["etp-ep"]).toEqual(f.ep)
  })

  test("E: order tp-pp-ep-dp, W=8 pp 2 (dp 4); the default order; ep 2 fails pp-last", () => {
    const e = Families.all(ParallelConfig.make({ world: 8, pp: 2, order: "tp-pp-ep-dp" }))
    expect(e.pp).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ])
    expect(e.dp).toEqual([
      [0, 2, 4, 6],
      [1, 3, 5, 7],
    ])
    const d = Families.all(ParallelConfig.make({ world: 8, pp: 2 }))
    expect(d.pp).toEqual([
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ])
    expect(d.dp).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ])
    expect(() => ParallelConfig.make({ world: 8, pp: 2, ep: 2, order: "tp-pp-ep-dp" })).toThrow(/does not end with 'pp'/)
  })
})
