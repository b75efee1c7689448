// Properties of the group families over random factorizations and orders, against the oracle.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Families from "../../src/mapping/Families.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import { factorized } from "./arbitraries.js"
import { type OracleInput, type Token, groupsOf, isValid, sizesOf } from "./oracle.js"

const configOf = (c: OracleInput) => ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") })

const valid = (maxWorld: number) => factorized(maxWorld).filter(isValid)

/** The oracle's tokens for each grid family (expert families use tp for etp, dp for edp). */
const oracleFamily: Record<Exclude<Families.FamilyName, "embedding">, { grid: "dense" | "expert"; tokens: Array<Token> }> = {
  tp: { grid: "dense", tokens: ["tp"] },
  cp: { grid: "dense", tokens: ["cp"] },
  dp: { grid: "dense", tokens: ["dp"] },
  pp: { grid: "dense", tokens: ["pp"] },
  "dp-cp": { grid: "dense", tokens: ["cp", "dp"] },
  "tp-cp": { grid: "dense", tokens: ["tp", "cp"] },
  "tp-pp": { grid: "dense", tokens: ["pp", "tp"] },
  "tp-dp": { grid: "dense", tokens: ["tp", "dp"] },
  "tp-dp-cp": { grid: "dense", tokens: ["dp", "cp", "tp"] },
  etp: { grid: "expert", tokens: ["tp"] },
  ep: { grid: "expert", tokens: ["ep"] },
  edp: { grid: "expert", tokens: ["dp"] },
  "etp-ep": { grid: "expert", tokens: ["ep", "tp"] },
  "etp-ep-pp": { grid: "expert", tokens: ["pp", "ep", "tp"] },
}

describe("group families", () => {
  test("every family partitions the ranks into equal groups", () => {
    fc.assert(
      fc.property(valid(4096), (c) => {
        const families = Families.all(configOf(c))
        for (const name of Families.familyNames) {
          const groups = families[name]
          const seen = new Uint8Array(c.world)
          const size = groups[0]?.length ?? 0
          for (const g of groups) {
            expect(g.length).toBe(size)
            for (const r of g) seen[r] = (seen[r] ?? 0) + 1
          }
          if (name === "embedding") {
            // Embedding groups cover only the first and last stage, each rank once.
            const expected = c.pp === 1 ? c.world : (2 * c.world) / c.pp
            expect(groups.length * size).toBe(expected)
            expect(seen.every((n) => n <= 1)).toBe(true)
          } else {
            expect(seen.every((n) => n === 1)).toBe(true)
          }
        }
      }),
      { numRuns: 150 },
    )
  })

  test("every family equals the slow oracle, group order and member order included", () => {
    fc.assert(
      fc.property(valid(1024), (c) => {
        const families = Families.all(configOf(c))
        for (const [name, spec] of Object.entries(oracleFamily)) {
          const expected = groupsOf(c.world, c.order, sizesOf(c, spec.grid), spec.tokens)
          expect(families[name as Families.FamilyName], name).toEqual(expected)
        }
        const pp = groupsOf(c.world, c.order, sizesOf(c, "dense"), ["pp"])
        expect(families.embedding).toEqual(pp.map((g) => (g.length > 1 ? [g[0], g[g.length - 1]] : [g[0]])))
      }),
      { numRuns: 150 },
    )
  })

  test("family sizes multiply out: tp*cp*dp*pp = etp*ep*edp*pp = world", () => {
    fc.assert(
      fc.property(valid(4096), (c) => {
        const f = Families.all(configOf(c))
        const size = (name: Families.FamilyName) => f[name][0]?.length ?? 0
        expect(size("tp") * size("cp") * size("dp") * size("pp")).toBe(c.world)
        expect(size("etp") * size("ep") * size("edp") * size("pp")).toBe(c.world)
        expect(size("tp-dp-cp")).toBe(c.world / c.pp)
        expect(size("etp-ep-pp")).toBe(c.etp * c.ep * c.pp)
      }),
      { numRuns: 150 },
    )
  })

  test("the pipeline groups of both grids are identical", () => {
    fc.assert(
      fc.property(valid(4096), (c) => {
        const config = configOf(c)
        const dense = groupsOf(c.world, c.order, sizesOf(c, "dense"), ["pp"])
        const expert = groupsOf(c.world, c.order, sizesOf(c, "expert"), ["pp"])
        expect(dense).toEqual(expert)
        expect(Families.family(config, "pp")).toEqual(dense)
      }),
      { numRuns: 100 },
    )
  })
})
