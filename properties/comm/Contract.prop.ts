// The communicator contract, run against every backend: algebraic identities of the
// collectives, p2p FIFO order, zero-size messages, groups of one, groups from real mappings.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { backends, mappingGroups, valuesOf } from "./backends.js"

const cols = fc.integer({ min: 0, max: 3 })

for (const backend of backends) {
  describe(`communicator contract (${backend})`, () => {
    test("allReduce sums, and reduceScatter then allGather equals allReduce", async () => {
      await fc.assert(
        fc.asyncProperty(mappingGroups, fc.integer({ min: 0, max: 3 }), cols, async ({ world, groupOf }, blocks, c) => {
          const results = await Job.runPromise({ world, backend }, (rank) =>
            Effect.gen(function* () {
              const group = groupOf(rank)
              const n = group.ranks.length
              const x = Tensor.fromArray(valuesOf(rank, blocks * n * c), [blocks * n, c], { dtype: "float64" })
              const sum = yield* Comm.allReduce(group, x)
              const viaScatter = yield* Comm.allGather(group, yield* Comm.reduceScatter(group, x))
              return { group, sum: Tensor.toArray(sum), viaScatter: Tensor.toArray(viaScatter) }
            }),
          )
          for (const r of results) {
            const n = r.group.ranks.length
            const expected = valuesOf(0, blocks * n * c).map((_, i) => r.group.ranks.reduce((acc, m) => acc + (valuesOf(m, blocks * n * c)[i] as number), 0))
            r.sum.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 9))
            expect(r.viaScatter).toEqual(r.sum)
          }
        }),
        { numRuns: 40 },
      )
    })

    test("allToAllV twice with swapped splits is the identity (zero-size blocks included)", async () => {
      await fc.assert(
        fc.asyncProperty(mappingGroups, cols, fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 16, maxLength: 16 }), async ({ world, groupOf }, c, pattern) => {
          const results = await Job.runPromise({ world, backend }, (rank) =>
            Effect.gen(function* () {
              const group = groupOf(rank)
              const splits = group.ranks.map((_, j) => pattern[(rank + j) % pattern.length] as number)
              const rows = splits.reduce((a, b) => a + b, 0)
              const x = Tensor.fromArray(valuesOf(rank, rows * c), [rows, c], { dtype: "float64" })
              const there = yield* Comm.allToAllV(group, x, splits)
              const back = yield* Comm.allToAllV(group, there.tensor, there.recvSplits)
              // Member j received splits_i[j] rows from each member i.
              const expectedRecv = group.ranks.map((m) => pattern[(m + Group.localRank(group, rank)) % pattern.length] as number)
              return { x: Tensor.toArray(x), back: Tensor.toArray(back.tensor), recv: there.recvSplits, expectedRecv, sentBack: back.recvSplits, splits }
            }),
          )
          for (const r of results) {
            expect(r.back).toEqual(r.x)
            expect(r.recv).toEqual(r.expectedRecv)
            expect(r.sentBack).toEqual(r.splits)
          }
        }),
        { numRuns: 40 },
      )
    })

    test("allGatherV concatenates any row counts, zero included, in group order", async () => {
      await fc.assert(
        fc.asyncProperty(mappingGroups, cols, async ({ world, groupOf }, c) => {
          const rowsOf = (rank: number) => rank % 3
          const results = await Job.runPromise({ world, backend }, (rank) =>
            Effect.gen(function* () {
              const group = groupOf(rank)
              const x = Tensor.fromArray(valuesOf(rank, rowsOf(rank) * c), [rowsOf(rank), c], { dtype: "float32" })
              const g = yield* Comm.allGatherV(group, x)
              return { group, data: Tensor.toArray(g.tensor), splits: g.splits }
            }),
          )
          for (const r of results) {
            expect(r.splits).toEqual(r.group.ranks.map(rowsOf))
            expect(r.data).toEqual(r.group.ranks.flatMap((m) => Array.from(new Float32Array(valuesOf(m, rowsOf(m) * c)))))
          }
        }),
        { numRuns: 30 },
      )
    })

    test("broadcast gives the root's tensor; groups of one are the identity", async () => {
      await fc.assert(
        fc.asyncProperty(mappingGroups, fc.nat(), async ({ world, groupOf }, rootSeed) => {
          const results = await Job.runPromise({ world, backend }, (rank) =>
            Effect.gen(function* () {
              const group = groupOf(rank)
              const root = rootSeed % group.ranks.length
              const x = Tensor.fromArray(valuesOf(rank, 4), [2, 2], { dtype: "float64" })
              const b = yield* Comm.broadcast(group, x, root)
              const self = Group.make(`self#${rank}`, [rank])
              const own = yield* Comm.allReduce(self, x)
              const ownGather = yield* Comm.allGather(self, x)
              return { b: Tensor.toArray(b), expected: valuesOf(group.ranks[root] as number, 4), own: Tensor.toArray(own), ownGather: Tensor.toArray(ownGather), x: Tensor.toArray(x) }
            }),
          )
          for (const r of results) {
            expect(r.b).toEqual(r.expected)
            expect(r.own).toEqual(r.x)
            expect(r.ownGather).toEqual(r.x)
          }
        }),
        { numRuns: 30 },
      )
    })

    test("p2p keeps FIFO order per sender, receiver and tag, zero-size messages included", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 6 }), async (world, count) => {
          const results = await Job.runPromise({ world, backend }, (rank) =>
            Effect.gen(function* () {
              const next = (rank + 1) % world
              const prev = (rank + world - 1) % world
              for (let i = 0; i < count; i++) yield* Comm.send(next, Tensor.fromArray(valuesOf(rank, i), [i], { dtype: "float64" }))
              yield* Comm.send(next, Tensor.fromArray([rank], [1], { dtype: "float64" }), "other")
              const got: Array<Array<number>> = []
              const other = yield* Comm.recv(prev, "other")
              for (let i = 0; i < count; i++) got.push(Tensor.toArray(yield* Comm.recv(prev)))
              return { prev, got, other: Tensor.toArray(other) }
            }),
          )
          for (const r of results) {
            expect(r.got).toEqual(Array.from({ length: count }, (_, i) => valuesOf(r.prev, i)))
            expect(r.other).toEqual([r.prev])
          }
        }),
        { numRuns: 30 },
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
    expect(await outcome("local")).toEqual([[1, 2], [1, 2]])
    // Rank 0 mutates after issuing and before rank 1 completes the collective, which reads
    // rank 0's buffer in place; rank 1 completes it at issue time, before its own mutation.
    const zero = await outcome("local-zero-copy")
    expect(zero[0]).toEqual([100, 2])
  })
})
