// Properties of one rank grid: coordinates, groups, group-local ranks, mask-order independence.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type { AxisName } from "../../src/mapping/Axis.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as RankGrid from "../../src/mapping/RankGrid.js"
import { factorized } from "./arbitraries.js"
import { type OracleInput, coordsOf, isValid, sizesOf } from "./oracle.js"

const gridsOf = (c: OracleInput) => {
  const config = ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") })
  return { dense: ParallelConfig.denseGrid(config), expert: ParallelConfig.expertGrid(config) }
}

const valid = factorized(4096).filter(isValid)
const denseAxes: ReadonlyArray<AxisName> = ["tp", "cp", "dp", "pp"]
const expertAxes: ReadonlyArray<AxisName> = ["etp", "ep", "edp", "pp"]
const subset = (axes: ReadonlyArray<AxisName>) => fc.subarray([...axes], { minLength: 0 })

describe("rank grid", () => {
  test("the micro-example of the reference: sizes [tp 2, dp 3, pp 4], dp groups", () => {
    const grid = RankGrid.make("dense", ["tp", "dp", "pp"], (t) => ({ tp: 2, dp: 3, pp: 4 })[t as "tp" | "dp" | "pp"])
    const dp = RankGrid.groups(grid, ["dp"])
    expect(dp.length).toBe(8)
    expect(dp[0]).toEqual([0, 2, 4])
    expect(dp[1]).toEqual([1, 3, 5])
    expect(dp[7]).toEqual([19, 21, 23])
  })

  test("coordinates round-trip with ranks in both grids and match repeated division", () => {
    fc.assert(
      fc.property(valid, fc.nat(), (c, seed) => {
        const { dense, expert } = gridsOf(c)
        const rank = seed % c.world
        for (const [grid, kind] of [
          [dense, "dense"],
          [expert, "expert"],
        ] as const) {
          const coords = RankGrid.coordinates(grid, rank)
          expect(RankGrid.rankAt(grid, coords)).toBe(rank)
          const oracle = coordsOf(rank, c.order, sizesOf(c, kind))
          if (kind === "dense") expect([coords.tp, coords.cp, coords.dp, coords.pp]).toEqual([oracle.tp, oracle.cp, oracle.dp, oracle.pp])
          else expect([coords.etp, coords.ep, coords.edp, coords.pp]).toEqual([oracle.tp, oracle.ep, oracle.dp, oracle.pp])
        }
      }),
      { numRuns: 300 },
    )
  })

  test("group-local rank, group index and groupOf agree with the listed groups", () => {
    fc.assert(
      fc.property(valid, subset(denseAxes), subset(expertAxes), fc.nat(), (c, dAxes, eAxes, seed) => {
        const { dense, expert } = gridsOf(c)
        const rank = seed % c.world
        for (const [grid, axes] of [
          [dense, dAxes],
          [expert, eAxes],
        ] as const) {
          const groups = RankGrid.groups(grid, axes)
          const index = RankGrid.groupIndex(grid, rank, axes)
          const group = groups[index] ?? []
          expect(RankGrid.groupOf(grid, rank, axes)).toEqual(group)
          expect(group[RankGrid.localRank(grid, rank, axes)]).toBe(rank)
        }
      }),
      { numRuns: 300 },
    )
  })

  test("the etp-ep group-local rank is etp + ETP*ep (dispatch relies on it)", () => {
    fc.assert(
      fc.property(valid, fc.nat(), (c, seed) => {
        const { expert } = gridsOf(c)
        const rank = seed % c.world
        const etp = RankGrid.coordinate(expert, rank, "etp")
        const ep = RankGrid.coordinate(expert, rank, "ep")
        expect(RankGrid.localRank(expert, rank, ["etp", "ep"])).toBe(etp + c.etp * ep)
      }),
      { numRuns: 300 },
    )
  })

  test("groups do not depend on the order the axes are requested in (dp-cp equals cp-dp)", () => {
    fc.assert(
      fc.property(valid, subset(denseAxes), (c, axes) => {
        const { dense } = gridsOf(c)
        expect(RankGrid.groups(dense, axes)).toEqual(RankGrid.groups(dense, [...axes].reverse()))
        expect(RankGrid.groups(dense, ["dp", "cp"])).toEqual(RankGrid.groups(dense, ["cp", "dp"]))
      }),
      { numRuns: 150 },
    )
  })

  test("groups over no axes are singletons and over all axes one group of every rank in order", () => {
    fc.assert(
      fc.property(valid, (c) => {
        const { dense } = gridsOf(c)
        expect(RankGrid.groups(dense, [])).toEqual(Array.from({ length: c.world }, (_, r) => [r]))
        expect(RankGrid.groups(dense, denseAxes)).toEqual([Array.from({ length: c.world }, (_, r) => r)])
      }),
      { numRuns: 50 },
    )
  })

  test("unknown axes and coordinates out of range are refused", () => {
    const config = ParallelConfig.make({ world: 8, tp: 2, pp: 2 })
    expect(() => RankGrid.groups(ParallelConfig.denseGrid(config), ["etp"])).toThrow(/no axis 'etp'/)
    expect(() => RankGrid.rankAt(ParallelConfig.denseGrid(config), { tp: 2 })).toThrow(/outside 0..1/)
  })
})
