// The communicator contract (properties/comm/Contract.prop.ts) on the threads backend: the same
// properties, run through ThreadsJob with the rank programs of scenarios.ts, fewer runs and
// worlds up to 8. Every job's results are also compared with the same program on the local
// backend: equal bit for bit (the arithmetic and its order are the same).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Families from "../../../src/mapping/Families.js"
import * as Job from "../../../src/runtime/Job.js"
import * as ThreadsJob from "../../../src/runtime/ThreadsJob.js"
import { factorized } from "../../mapping/arbitraries.js"
import { isValid } from "../../mapping/oracle.js"
import { valuesOf as contractValues } from "../backends.js"
import * as Scenarios from "./scenarios.js"

const module = new URL("./scenarios.ts", import.meta.url)
const familyNames = Families.familyNames.filter((f) => f !== "embedding")

/** The contract's mappingGroups as plain data, worlds up to 8. */
const mappings: fc.Arbitrary<Scenarios.MappingArgs> = factorized(8)
  .filter(isValid)
  .chain((c) => fc.constantFrom(...familyNames).map((family) => ({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-"), family })))

const cols = fc.integer({ min: 0, max: 3 })
const runs = { numRuns: 5 }

type Name = keyof typeof Scenarios

/** Runs a scenario on threads and on the local backend; returns the threads results. */
const both = async <A>(name: Name, world: number, args: unknown, copy = true): Promise<Array<A>> => {
  const threads = await ThreadsJob.runPromise<A>({ world, module, export: name, args, timeoutMs: 10_000, copy })
  const program = Scenarios[name] as (rank: number, args: unknown) => Effect.Effect<A, unknown, never>
  const local = await Job.runPromise({ world }, (rank) => program(rank, args))
  expect(threads).toEqual(local)
  return threads
}

afterAll(() => ThreadsJob.shutdown())

describe("communicator contract (threads)", () => {
  test("the scenarios use the contract's values", () => {
    expect(Scenarios.valuesOf(5, 7, 2)).toEqual(contractValues(5, 7, 2))
  })

  test("allReduce sums, and reduceScatter then allGather equals allReduce", async () => {
    await fc.assert(
      fc.asyncProperty(mappings, fc.integer({ min: 0, max: 3 }), cols, async (mapping, blocks, c) => {
        const results = await both<{ group: { ranks: Array<number> }; sum: Array<number>; viaScatter: Array<number> }>("reduceIdentities", mapping.world, { mapping, blocks, c })
        for (const r of results) {
          const n = r.group.ranks.length
          const expected = valuesOf0(blocks * n * c).map((_, i) => r.group.ranks.reduce((acc, m) => acc + (Scenarios.valuesOf(m, blocks * n * c)[i] as number), 0))
          r.sum.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 9))
          expect(r.viaScatter).toEqual(r.sum)
        }
      }),
      runs,
    )
  })

  test("allToAllV twice with swapped splits is the identity (zero-size blocks included)", async () => {
    await fc.assert(
      fc.asyncProperty(mappings, cols, fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 16, maxLength: 16 }), async (mapping, c, pattern) => {
        const results = await both<{ x: Array<number>; back: Array<number>; recv: Array<number>; expectedRecv: Array<number>; sentBack: Array<number>; splits: Array<number> }>("allToAllRoundTrip", mapping.world, { mapping, c, pattern })
        for (const r of results) {
          expect(r.back).toEqual(r.x)
          expect(r.recv).toEqual(r.expectedRecv)
          expect(r.sentBack).toEqual(r.splits)
        }
      }),
      runs,
    )
  })

  test("allGatherV concatenates any row counts, zero included, in group order", async () => {
    await fc.assert(
      fc.asyncProperty(mappings, cols, async (mapping, c) => {
        const rowsOf = (rank: number) => rank % 3
        const results = await both<{ group: { ranks: Array<number> }; data: Array<number>; splits: Array<number> }>("gatherV", mapping.world, { mapping, c })
        for (const r of results) {
          expect(r.splits).toEqual(r.group.ranks.map(rowsOf))
          expect(r.data).toEqual(r.group.ranks.flatMap((m) => Array.from(new Float32Array(Scenarios.valuesOf(m, rowsOf(m) * c)))))
        }
      }),
      runs,
    )
  })

  test("broadcast gives the root's tensor; groups of one are the identity", async () => {
    await fc.assert(
      fc.asyncProperty(mappings, fc.nat(), async (mapping, rootSeed) => {
        const results = await both<{ b: Array<number>; expected: Array<number>; own: Array<number>; ownGather: Array<number>; x: Array<number> }>("broadcastAndSelf", mapping.world, { mapping, rootSeed })
        for (const r of results) {
          expect(r.b).toEqual(r.expected)
          expect(r.own).toEqual(r.x)
          expect(r.ownGather).toEqual(r.x)
        }
      }),
      runs,
    )
  })

  test("p2p keeps FIFO order per sender, receiver and tag, zero-size messages included", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 6 }), async (world, count) => {
        const results = await both<{ prev: number; got: Array<Array<number>>; other: Array<number> }>("p2pFifo", world, { world, count })
        for (const r of results) {
          expect(r.got).toEqual(Array.from({ length: count }, (_, i) => Scenarios.valuesOf(r.prev, i)))
          expect(r.other).toEqual([r.prev])
        }
      }),
      runs,
    )
  })

  test("receive buffers are written in place and reused; ops on two groups overlap", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 1500 }), async (world, c) => {
        // c up to 1500 columns: large enough blocks to take the native copy path.
        await both("receiveBuffers", world, { world, c, steps: 3 })
      }),
      { numRuns: 4 },
    )
  })

  test("large allReduces (members reduce one slice each, then share it) equal the local backend bit for bit", async () => {
    await fc.assert(
      fc.asyncProperty(mappings, fc.integer({ min: 64 * 1024, max: 200_000 }), async (mapping, length) => {
        await both("bigAllReduce", mapping.world, { mapping, length, steps: 3 })
      }),
      { numRuns: 4 },
    )
  })

  test("zero-copy mode: a rank may overwrite its shared tensor as soon as its collective completes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 3000 }), async (world, c) => {
        await both("zeroCopyReuse", world, { world, c, steps: 4 }, false)
      }),
      { numRuns: 4 },
    )
  })
})

const valuesOf0 = (n: number) => new Array<number>(n).fill(0)
