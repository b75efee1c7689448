// The backends every contract property runs against, and random groups from real mappings.
import fc from "fast-check"
import * as Group from "../../src/comm/Group.js"
import * as Families from "../../src/mapping/Families.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import type { JobOptions } from "../../src/runtime/Job.js"
import { factorized } from "../mapping/arbitraries.js"
import { isValid } from "../mapping/oracle.js"

export const backends: ReadonlyArray<NonNullable<JobOptions["backend"]>> = ["local", "local-zero-copy"]

const familyNames = Families.familyNames.filter((f) => f !== "embedding")

/** A world of up to 16 ranks, a family of its mapping, and each rank's group in that family. */
export const mappingGroups = factorized(16)
  .filter(isValid)
  .chain((c) =>
    fc.constantFrom(...familyNames).map((family) => {
      const config = ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") })
      const groupOf = (rank: number) => Group.ofFamily(config, family, rank)
      return { world: c.world, family, groupOf }
    }),
  )

/** Deterministic values for rank r (so a reference can recompute them). */
export const valuesOf = (rank: number, n: number, salt = 0): Array<number> => Array.from({ length: n }, (_, i) => ((rank * 7919 + i * 104729 + salt * 31) % 1000) / 100 - 5)
