// Fault tests: a failing rank, a skipped collective, disagreeing ops, a rank that stops. Each
// ends the job within the timeout with an error naming the rank and the group, and nothing
// keeps running afterwards.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import type { RankFailed } from "../../src/runtime/JobError.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const timeoutMs = 300
const world = 4
const group = Group.make("ep#0", [0, 1, 2, 3])
const x = () => Tensor.fromArray([1, 2], [1, 2], { dtype: "float64" })

/** Runs a job and returns its failure and how long it took. */
const failure = async <A, E>(program: (rank: number) => Effect.Effect<A, E, Comm.Communicator>) => {
  const started = performance.now()
  const exit = await Effect.runPromise(Effect.exit(Job.run({ world, timeoutMs }, program)))
  const ms = performance.now() - started
  if (Exit.isSuccess(exit)) throw new Error("the job was expected to fail")
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  return { error: (error as { error: RankFailed } | undefined)?.error, ms }
}

describe("faults end the job with a diagnosis", () => {
  test("a rank that throws: the job fails with that rank; waiting ranks are interrupted at once", async () => {
    const { error, ms } = await failure((rank) =>
      Effect.gen(function* () {
        if (rank === 2) return yield* Effect.die(new Error("boom in rank 2"))
        return yield* Comm.allReduce(group, x())
      }),
    )
    expect(error?._tag).toBe("RankFailed")
    expect(error?.rank).toBe(2)
    expect(error?.message).toContain("boom in rank 2")
    expect(ms).toBeLessThan(timeoutMs)
  })

  test("a rank that skips a collective: Mismatch at the next one, naming ranks and group", async () => {
    const { error, ms } = await failure((rank) =>
      Effect.gen(function* () {
        if (rank !== 1) yield* Comm.allReduce(group, x())
        yield* Comm.allGather(group, x())
      }),
    )
    expect(error?.message).toMatch(/Mismatch: allReduce #0 on ep#0 \[0,1,2,3\]/)
    expect(error?.message).toContain("rank 1 issued allGather")
    expect(ms).toBeLessThan(timeoutMs)
  })

  test("ranks that issue different ops or sizes: Mismatch listing who issued what", async () => {
    const { error } = await failure((rank) =>
      rank % 2 === 0 ? Comm.allReduce(group, x()) : Comm.allReduce(group, Tensor.zeros([3, 2], { dtype: "float64" })),
    )
    // The slot fails at the first disagreeing arrival, naming everyone present so far.
    expect(error?.message).toContain("rank 0 issued allReduce(sum) float64 [1, 2]")
    expect(error?.message).toContain("rank 1 issued allReduce(sum) float64 [3, 2]")
  })

  test("a rank that never arrives: Timeout naming the missing rank, within the timeout", async () => {
    const { error, ms } = await failure((rank) => (rank === 3 ? Effect.never : Comm.allReduce(group, x())))
    expect(error?.message).toContain("Timeout: allReduce #0 on ep#0 [0,1,2,3]")
    expect(error?.message).toContain("never arrived: [3]")
    expect(ms).toBeGreaterThanOrEqual(timeoutMs - 5)
    expect(ms).toBeLessThan(timeoutMs * 3)
  })

  test("bad arguments of one rank fail every member at once", async () => {
    const { error } = await failure((rank) =>
      Comm.allToAllV(group, Tensor.zeros([2, 1], { dtype: "float64" }), rank === 0 ? [1, 1, 1, 1] : [1, 1, 0, 0]),
    )
    expect(error?.message).toContain("rank 0: sendSplits add up to 4 rows but the tensor has 2")
  })

  test("nothing keeps running after the job fails", async () => {
    let ticks = 0
    await failure((rank) =>
      Effect.gen(function* () {
        yield* Effect.forkChild(Effect.forever(Effect.andThen(Effect.sleep(1), Effect.sync(() => void ticks++))))
        if (rank === 0) {
          yield* Effect.sleep(20)
          return yield* Effect.fail("rank 0 gives up")
        }
        return yield* Effect.never
      }),
    )
    const after = ticks
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(ticks).toBe(after)
    expect(after).toBeGreaterThan(0)
  })

  test("a recv that nobody answers times out naming the peer", async () => {
    const { error } = await failure((rank) => (rank === 0 ? Comm.recv(1) : Effect.never))
    expect(error?.message).toContain("Timeout: recv #0 on p2p 1->0")
  })
})
