// A rank's group of a family, built from the grid alone, is that family's listed group holding
// the rank, with its index in the name.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as Families from "../../src/mapping/Families.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import { factorized } from "../mapping/arbitraries.js"
import { isValid } from "../mapping/oracle.js"

describe("groups of a family", () => {
  test("ofFamily equals the family's listed group of the rank", () => {
    fc.assert(
      fc.property(factorized(256).filter(isValid), fc.constantFrom(...Families.familyNames), fc.nat(), (c, family, seed) => {
        const config = ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") })
        const groups = Families.family(config, family)
        const rank = seed % c.world
        const index = groups.findIndex((g) => g.includes(rank))
        if (index < 0) {
          expect(() => Group.ofFamily(config, family, rank)).toThrow("is in no")
          return
        }
        const g = Group.ofFamily(config, family, rank)
        expect(g.name).toBe(`${family}#${index}`)
        expect(g.ranks).toEqual(groups[index])
      }),
      { numRuns: 300 },
    )
  })
})
