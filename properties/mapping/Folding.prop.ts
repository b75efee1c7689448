// The fold: per-rank coordinates in both grids, the bijection within a stage, pipeline neighbours.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Families from "../../src/mapping/Families.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import { factorized } from "./arbitraries.js"
import { type OracleInput, isValid } from "./oracle.js"

const foldOf = (c: OracleInput) => Folding.make(ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") }))

const valid = factorized(2048).filter(isValid)

describe("folding", () => {
  test("within each stage, attention and MoE coordinates are in bijection", () => {
    fc.assert(
      fc.property(valid, (c) => {
        const fold = foldOf(c)
        const places = Folding.places(fold)
        for (let stage = 0; stage < c.pp; stage++) {
          const inStage = places.filter((p) => p.pp === stage)
          expect(inStage.length).toBe(c.world / c.pp)
          const dense = new Set(inStage.map((p) => `${p.tp},${p.cp},${p.dp}`))
          const expert = new Set(inStage.map((p) => `${p.etp},${p.ep},${p.edp}`))
          // Every attention coordinate and every MoE coordinate occurs exactly once in the stage.
          expect(dense.size).toBe(inStage.length)
          expect(expert.size).toBe(inStage.length)
        }
      }),
      { numRuns: 100 },
    )
  })

  test("fold and unfold are inverse and agree with rank lookups", () => {
    fc.assert(
      fc.property(valid, fc.nat(), (c, seed) => {
        const fold = foldOf(c)
        const rank = seed % c.world
        const d = Folding.denseCoordinates(fold, rank)
        const e = Folding.expertCoordinates(fold, rank)
        expect(Folding.rankOfDense(fold, d)).toBe(rank)
        expect(Folding.rankOfExpert(fold, e)).toBe(rank)
        expect(Folding.foldToExpert(fold, d)).toEqual(e)
        expect(Folding.unfoldToDense(fold, e)).toEqual(d)
        expect(e.pp).toBe(d.pp)
      }),
      { numRuns: 300 },
    )
  })

  test("with pp last, q = tp + TP(cp + CP dp) = etp + ETP(ep + EP edp) in order tp-cp-ep-dp-pp", () => {
    fc.assert(
      fc.property(valid, fc.nat(), (c, seed) => {
        // The same degrees under the default order (valid: pp is last).
        const fold = Folding.make(ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp }))
        const rank = seed % c.world
        const p = Folding.place(fold, rank)
        const q = rank % (c.world / c.pp)
        expect(p.tp + c.tp * (p.cp + c.cp * p.dp)).toBe(q)
        expect(p.etp + c.etp * (p.ep + c.ep * p.edp)).toBe(q)
        expect(p.pp).toBe(Math.floor(rank / (c.world / c.pp)))
      }),
      { numRuns: 300 },
    )
  })

  test("pipeline next/prev walk each pp group in order, wrapping around", () => {
    fc.assert(
      fc.property(valid, (c) => {
        const fold = foldOf(c)
        for (const group of Families.family(fold.config, "pp")) {
          group.forEach((rank, i) => {
            expect(Folding.ppNext(fold, rank)).toBe(group[(i + 1) % group.length])
            expect(Folding.ppPrev(fold, rank)).toBe(group[(i - 1 + group.length) % group.length])
            expect(Folding.isFirstStage(fold, rank)).toBe(i === 0)
            expect(Folding.isLastStage(fold, rank)).toBe(i === group.length - 1)
          })
        }
      }),
      { numRuns: 100 },
    )
  })
})
