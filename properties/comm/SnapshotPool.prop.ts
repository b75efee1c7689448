// The copying local backend's snapshots come from SnapshotPool and go back when their meeting is
// over. Properties: a pooled copy equals its source; only the pool's own storage is taken back,
// each piece once (a buffer given back twice is still handed out once); and on the copying local
// backend, rounds of large collectives (snapshots well past the pool's 256 KiB floor, so each
// round reuses the last round's) give every rank the oracle's result while every rank overwrites
// its contribution right after issuing it: a snapshot reused too early, or shared by two
// meetings, would show another round's or another rank's numbers.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as SnapshotPool from "../../src/comm/SnapshotPool.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const big = 120_000 // floats (480 KB in float32: pooled), a multiple of every world below

describe("SnapshotPool", () => {
  test("a copy equals its source; foreign storage and second give-backs are ignored", () => {
    const source = Float32Array.from({ length: big }, (_, i) => i * 0.5)
    const a = SnapshotPool.copyOf(source)
    expect(a).not.toBe(source)
    expect(a).toEqual(source)
    const before = SnapshotPool.idleSize()
    SnapshotPool.release(source) // not the pool's: ignored
    expect(SnapshotPool.idleSize()).toBe(before)
    SnapshotPool.release(a)
    SnapshotPool.release(a) // twice: still idle once
    expect(SnapshotPool.idleSize()).toBe(before + a.byteLength)
    const b = SnapshotPool.copyOf(source)
    const c = SnapshotPool.copyOf(source)
    expect(b).toBe(a) // the idle one, reused
    expect(c).not.toBe(a) // handed out once only
    expect(c).toEqual(source)
    const small = Float32Array.of(1, 2, 3)
    const s = SnapshotPool.copyOf(small)
    SnapshotPool.release(s)
    expect(SnapshotPool.idleSize()).toBe(before) // b is out again; small copies are not pooled
  })

  test("rounds of large collectives on the copying local backend, inputs overwritten after issue, equal the oracle", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 1000 }), async (world, salt) => {
        const rounds = 4
        const value = (round: number, rank: number, i: number) => ((round * 7 + rank * 13 + salt + i) % 1001) - 500
        const results = await Job.runPromise({ world, backend: "local" }, (rank) =>
          Effect.gen(function* () {
            const group = Group.world(world)
            const seen: Array<{ sum: Array<number>; exchanged: Array<number> }> = []
            for (let round = 0; round < rounds; round++) {
              const x = Tensor.fromArray(
                Array.from({ length: big }, (_, i) => value(round, rank, i)),
                [world, big / world],
              )
              // The second contribution has the first's size and other numbers: were the first
              // snapshot reused before its meeting ended, the sum would show them.
              const y = Tensor.fromArray(
                Array.from({ length: big }, (_, i) => value(round + rounds, rank, i)),
                [world, big / world],
              )
              const reduced = yield* Comm.start.allReduce(group, x)
              const exchanged = yield* Comm.start.allToAllV(group, y, new Array<number>(world).fill(1))
              x.data.fill(9999) // aliasing bugs the snapshots must hide
              y.data.fill(-9999)
              const r = yield* reduced.await
              const e = (yield* exchanged.await).tensor
              seen.push({ sum: [r.data[0] as number, r.data[big - 1] as number], exchanged: Array.from({ length: world }, (_, s) => e.data[s * (big / world)] as number) })
            }
            return seen
          }),
        )
        results.forEach((seen, rank) => {
          seen.forEach((got, round) => {
            let first = 0
            let last = 0
            for (let r = 0; r < world; r++) {
              first += value(round, r, 0)
              last += value(round, r, big - 1)
            }
            expect(got.sum).toEqual([first, last])
            // From rank s this rank receives block `rank` of s's tensor.
            expect(got.exchanged).toEqual(Array.from({ length: world }, (_, s) => value(round + rounds, s, rank * (big / world))))
          })
        })
      }),
      { numRuns: 6 },
    )
  })
})
