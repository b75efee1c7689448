// The communicator contract, run unchanged against every backend (runOn.ts): algebraic
// identities of the collectives, p2p FIFO order, zero-size messages, groups of one, groups from
// real mappings, receive buffers, overlapping streams. Every other backend's results are also
// compared with the local backend's: equal bit for bit (one semantics, one order of arithmetic).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Families from "../../src/mapping/Families.js"
import * as Job from "../../src/runtime/Job.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Mappings from "../../src/testing/Mappings.js"
import { type BackendName, backends, results, type Scenario } from "./runOn.js"
import * as Scenarios from "./scenarios.js"

const familyNames = Families.familyNames.filter((f) => f !== "embedding")

/** A mapping as plain data and one of its families, worlds up to 8. */
const mappings: fc.Arbitrary<Scenarios.MappingArgs> = Mappings.mappings({ maxWorld: 8 }).chain((m) => fc.constantFrom(...familyNames).map((family) => ({ ...m, family })))

const cols = fc.integer({ min: 0, max: 3 })

afterAll(() => ThreadsJob.shutdown())

for (const backend of backends) {
  // Threads jobs start workers: fewer runs there.
  const runs = { numRuns: backend.startsWith("threads") ? 4 : 20 }
  const heavy = { numRuns: backend.startsWith("threads") ? 3 : 4 }
  const local: BackendName = backend.endsWith("zero-copy") ? "local-zero-copy" : "local"

  /** The scenario on this backend, checked equal to the same scenario on the local backend. */
  const run = async <A>(name: Scenario, world: number, args: unknown): Promise<Array<A>> => {
    const got = await results<A>(backend, name, world, args)
    if (backend !== local) expect(got).toEqual(await results<A>(local, name, world, args))
    return got
  }

  describe(`communicator contract (${backend})`, () => {
    test("allReduce sums, and reduceScatter then allGather equals allReduce", async () => {
      await fc.assert(
        fc.asyncProperty(mappings, fc.integer({ min: 0, max: 3 }), cols, async (mapping, blocks, c) => {
          const rs = await run<{ group: { ranks: Array<number> }; sum: Array<number>; viaScatter: Array<number> }>("reduceIdentities", mapping.world, { mapping, blocks, c })
          for (const r of rs) {
            const n = r.group.ranks.length
            const expected = Array.from({ length: blocks * n * c }, (_, i) => r.group.ranks.reduce((acc, m) => acc + (Scenarios.valuesOf(m, blocks * n * c)[i] as number), 0))
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
          const rs = await run<{ x: Array<number>; back: Array<number>; recv: Array<number>; expectedRecv: Array<number>; sentBack: Array<number>; splits: Array<number> }>(
            "allToAllRoundTrip",
            mapping.world,
            { mapping, c, pattern },
          )
          for (const r of rs) {
            expect(r.back).toEqual(r.x)
            expect(r.recv).toEqual(r.expectedRecv)
            expect(r.sentBack).toEqual(r.splits)
          }
        }),
        runs,
      )
    })

    test("chunked allToAllV places every chunk (received: chunk-major, sent: from chunk-major; sent rows gathered or not; float32 and float64) and the reverse gives the input back", async () => {
      await fc.assert(
        fc.asyncProperty(
          mappings,
          cols,
          fc.integer({ min: 1, max: 3 }),
          fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 11 }),
          fc.boolean(),
          fc.boolean(),
          fc.constantFrom("float32" as const, "float64" as const),
          async (mapping, c, chunks, pattern, viaSent, gather, dtype) => {
            const rs = await run<{ me: number; g: number; x: Array<number>; there: Array<number>; splits: Array<number>; recvSplits: Array<number>; back: Array<number> }>(
              "chunkedAllToAll",
              mapping.world,
              { mapping, c, chunks, pattern, viaSent, gather, dtype },
            )
            const round = dtype === "float32" ? Math.fround : (v: number) => v
            for (const r of rs) {
              // The oracle: chunk l of every source s, in (l, s) order ("received") or (s, l) order ("sent").
              const expected: Array<number> = []
              const outer = viaSent ? r.g : chunks
              const inner = viaSent ? chunks : r.g
              for (let a = 0; a < outer; a++)
                for (let b = 0; b < inner; b++) {
                  const [s, l] = viaSent ? [a, b] : [b, a]
                  for (let row = 0; row < Scenarios.chunkRows(pattern, s, r.me, l); row++)
                    for (let col = 0; col < c; col++) expected.push(round(Scenarios.chunkValue(s, r.me, l, row, col)))
                }
              expect(r.there.flat()).toEqual(expected)
              expect(r.splits).toEqual(r.recvSplits)
              expect(r.back).toEqual(r.x.flat())
            }
          },
        ),
        runs,
      )
    })

    test("an allToAllV whose receiver sums its rows onto tokens, weighted or not, equals the plain exchange then the sum in received order", async () => {
      await fc.assert(
        fc.asyncProperty(
          mappings,
          // Up to 70 columns: the native sum's whole 64-column lines and masked tails.
          fc.integer({ min: 0, max: 70 }),
          fc.integer({ min: 1, max: 3 }),
          fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 11 }),
          fc.boolean(),
          fc.boolean(),
          fc.integer({ min: 1, max: 5 }),
          fc.constantFrom("float32" as const, "float64" as const),
          async (mapping, c, chunks, pattern, viaSent, gather, tokens, dtype) => {
            const args = { mapping, c, chunks, pattern, viaSent, gather, tokens, dtype }
            const rs = await run<{
              me: number
              plain: Array<number>
              combined: Array<number>
              weighted: Array<number>
              shape: Array<number>
              splits: Array<number>
              recvSplits: Array<number>
            }>("combinedAllToAll", mapping.world, args)
            const round = dtype === "float32" ? Math.fround : (v: number) => v
            for (const r of rs) {
              // The oracle: 0, then each received row added onto its token in received order
              // (weighted: the row times its weight, rounded, then added).
              const expected = new Array<number>(tokens * c).fill(0)
              const weighted = new Array<number>(tokens * c).fill(0)
              for (let row = 0; row < r.plain.length / Math.max(c, 1); row++) {
                const t = Scenarios.combineToken(row, r.me, tokens)
                const w = Scenarios.combineWeight(row, r.me)
                for (let col = 0; col < c; col++) {
                  const v = r.plain[row * c + col] as number
                  expected[t * c + col] = round((expected[t * c + col] as number) + v)
                  weighted[t * c + col] = round((weighted[t * c + col] as number) + round(w * v))
                }
              }
              expect(r.combined).toEqual(expected)
              expect(r.weighted).toEqual(weighted)
              expect(r.shape).toEqual([tokens, c])
              expect(r.splits).toEqual(r.recvSplits)
            }
          },
        ),
        runs,
      )
    })

    test("allGatherV concatenates any row counts, zero included, in group order", async () => {
      await fc.assert(
        fc.asyncProperty(mappings, cols, async (mapping, c) => {
          const rowsOf = (rank: number) => rank % 3
          const rs = await run<{ group: { ranks: Array<number> }; data: Array<number>; splits: Array<number> }>("gatherV", mapping.world, { mapping, c })
          for (const r of rs) {
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
          const rs = await run<{ b: Array<number>; expected: Array<number>; own: Array<number>; ownGather: Array<number>; x: Array<number> }>("broadcastAndSelf", mapping.world, {
            mapping,
            rootSeed,
          })
          for (const r of rs) {
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
          const rs = await run<{ prev: number; got: Array<Array<number>>; other: Array<number> }>("p2pFifo", world, { world, count })
          for (const r of rs) {
            expect(r.got).toEqual(Array.from({ length: count }, (_, i) => Scenarios.valuesOf(r.prev, i)))
            expect(r.other).toEqual([r.prev])
          }
        }),
        runs,
      )
    })

    test("receive buffers are written in place and reused; ops on two groups overlap", async () => {
      // c up to 1500 columns: blocks large enough to take the native copy path.
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 1500 }), async (world, c) => {
          await run("receiveBuffers", world, { world, c, steps: 3 })
        }),
        heavy,
      )
    })

    test("large allReduces (threads: members reduce one slice each, then share it) agree across backends", async () => {
      await fc.assert(
        fc.asyncProperty(mappings, fc.integer({ min: 64 * 1024, max: 200_000 }), async (mapping, length) => {
          await run("bigAllReduce", mapping.world, { mapping, length, steps: 3 })
        }),
        heavy,
      )
    })

    test("a rank may overwrite its input as soon as its collective completes", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 3000 }), async (world, c) => {
          await run("zeroCopyReuse", world, { world, c, steps: 4 })
        }),
        heavy,
      )
    })
  })
}

describe("copy and zero-copy modes", () => {
  test("the copying backend snapshots contributions; zero-copy reads them in place", async () => {
    const outcome = (backend: "local" | "local-zero-copy") =>
      Job.runPromise({ world: 2, backend }, (rank) =>
        Effect.gen(function* () {
          const group = Group.world(2)
          const x = Tensor.fromArray([rank + 1], [1, 1], { dtype: "float64" })
          const pending = yield* Comm.start.allGather(group, x)
          x.data[0] = 100 // an aliasing bug: mutating a buffer handed to a collective
          return Tensor.toArray(yield* pending.await)
        }),
      )
    expect(await outcome("local")).toEqual([
      [1, 2],
      [1, 2],
    ])
    // Rank 0 mutates after issuing and before rank 1 completes the collective, which reads
    // rank 0's buffer in place; rank 1 completes it at issue time, before its own mutation.
    const zero = await outcome("local-zero-copy")
    expect(zero[0]).toEqual([100, 2])
  })
})
