// The contract cases the MPI and NCCL suites run under mpirun with 4 processes (drawn by
// fast-check: mappings of world 4, sizes, splits), each with the tolerance its sums get against
// the local backend (0: bit for bit), and the comparison.
import fc from "fast-check"
import * as Families from "../../../src/mapping/Families.js"
import { factorized } from "../../mapping/arbitraries.js"
import { isValid } from "../../mapping/oracle.js"
import type { Scenario } from "../runOn.js"
import type * as Scenarios from "../scenarios.js"

export const world = 4
const familyNames = Families.familyNames.filter((f) => f !== "embedding")
export const mappings = factorized(world)
  .filter((c) => isValid(c) && c.world === world)
  .chain((c) =>
    fc.constantFrom(...familyNames).map((family): Scenarios.MappingArgs => ({ world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-"), family })),
  )
const draw = <A>(arb: fc.Arbitrary<A>, n: number): Array<A> => fc.sample(arb, { numRuns: n })

/** The args of combinedAllToAll (combineScenarios.ts): a chunked exchange and its sums onto tokens, rows of `c` columns. */
export const combinedArgs = (c: fc.Arbitrary<number>) =>
  fc.record({
    mapping: mappings,
    c,
    chunks: fc.integer({ min: 1, max: 3 }),
    pattern: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 11 }),
    viaSent: fc.boolean(),
    gather: fc.boolean(),
    tokens: fc.integer({ min: 1, max: 5 }),
    dtype: fc.constantFrom("float32" as const, "float64" as const),
  })

/** Contract cases: the scenario, its args, and the tolerance of its sums (0: bit for bit). */
export const contract: Array<{ readonly scenario: Scenario; readonly args: unknown; readonly sums: number }> = [
  ...draw(fc.record({ mapping: mappings, blocks: fc.integer({ min: 0, max: 3 }), c: fc.integer({ min: 0, max: 3 }) }), 4).map((args) => ({
    scenario: "reduceIdentities" as const,
    args,
    sums: 1e-12,
  })),
  ...draw(fc.record({ mapping: mappings, c: fc.integer({ min: 0, max: 3 }), pattern: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 16, maxLength: 16 }) }), 4).map(
    (args) => ({
      scenario: "allToAllRoundTrip" as const,
      args,
      sums: 0,
    }),
  ),
  // The received rows summed onto tokens on arrival: the sums run here, in one order.
  ...draw(combinedArgs(fc.integer({ min: 0, max: 70 })), 3).map((args) => ({ scenario: "combinedAllToAll" as const, args, sums: 0 })),
  ...draw(fc.record({ mapping: mappings, c: fc.integer({ min: 0, max: 3 }) }), 3).map((args) => ({ scenario: "gatherV" as const, args, sums: 0 })),
  ...draw(fc.record({ mapping: mappings, c: fc.integer({ min: 0, max: 3 }), seed: fc.nat({ max: 100 }) }), 3).map((args) => ({
    scenario: "reduceScatterUneven" as const,
    args,
    sums: 1e-12,
  })),
  ...draw(fc.record({ mapping: mappings, rootSeed: fc.nat() }), 3).map((args) => ({ scenario: "broadcastAndSelf" as const, args, sums: 0 })),
  ...draw(fc.integer({ min: 1, max: 6 }), 2).map((count) => ({ scenario: "p2pFifo" as const, args: { world, count }, sums: 0 })),
  ...draw(fc.integer({ min: 200_000, max: 600_000 }), 1).map((large) => ({ scenario: "p2pLargeThenSmall" as const, args: { world, large }, sums: 0 })),
  ...draw(fc.integer({ min: 1, max: 1500 }), 2).map((c) => ({ scenario: "receiveBuffers" as const, args: { world, c, steps: 3 }, sums: 1e-4 })),
  ...draw(fc.record({ mapping: mappings, length: fc.integer({ min: 64 * 1024, max: 200_000 }) }), 2).map((a) => ({
    scenario: "bigAllReduce" as const,
    args: { ...a, steps: 3 },
    sums: 1e-4,
  })),
  ...draw(fc.integer({ min: 1, max: 3000 }), 2).map((c) => ({ scenario: "zeroCopyReuse" as const, args: { world, c, steps: 4 }, sums: 0 })),
]

/** a equals b, numbers within `tolerance` relative. */
export const near = (a: unknown, b: unknown, tolerance: number): boolean => {
  if (typeof a === "number" && typeof b === "number") return a === b || Math.abs(a - b) <= tolerance * Math.max(1, Math.abs(a), Math.abs(b))
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => near(x, b[i], tolerance))
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    const ka = Object.keys(a).sort()
    return near(ka, Object.keys(b).sort(), 0) && ka.every((k) => near((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], tolerance))
  }
  return a === b
}
