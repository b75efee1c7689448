// Rank programs of the fault suites (re-exported by scenarios.ts, where the runners find
// programs): each fails in one way, or misbehaves as a rank can (exits, crashes, spins, a result
// that cannot be cloned). Keep imports light: every worker loads this.
import * as Effect from "effect/Effect"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Tensor from "../../src/tensor/Tensor.js"

// `group` is ep#0 over ranks [0..world).
const faultGroup = (world: number) =>
  Group.make(
    "ep#0",
    Array.from({ length: world }, (_, i) => i),
  )
const x = () => Tensor.fromArray([1, 2], [1, 2], { dtype: "float64" })

export const throws = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world } = args as { world: number }
    if (rank === 2) return yield* Effect.die(new Error("boom in rank 2"))
    return yield* Comm.allReduce(faultGroup(world), x())
  })

export const skips = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const group = faultGroup((args as { world: number }).world)
    if (rank !== 1) yield* Comm.allReduce(group, x())
    yield* Comm.allGather(group, x())
  })

export const differentOps = (rank: number, args: unknown) => {
  const group = faultGroup((args as { world: number }).world)
  return rank % 2 === 0 ? Comm.allReduce(group, x()) : Comm.allReduce(group, Tensor.zeros([3, 2], { dtype: "float64" }))
}

/** The same shape everywhere, but ranks 0 and 2 sum where 1 and 3 take the max. */
export const differentReduce = (rank: number, args: unknown) => Comm.allReduce(faultGroup((args as { world: number }).world), x(), rank % 2 === 0 ? "sum" : "max")

export const neverArrives = (rank: number, args: unknown) => (rank === 3 ? Effect.never : Comm.allReduce(faultGroup((args as { world: number }).world), x()))

export const badSplits = (rank: number, args: unknown) =>
  Comm.allToAllV(faultGroup((args as { world: number }).world), Tensor.zeros([2, 1], { dtype: "float64" }), rank === 0 ? [1, 1, 1, 1] : [1, 1, 0, 0])

export const badReceiveBuffer = (rank: number, args: unknown) =>
  Comm.allGather(faultGroup((args as { world: number }).world), x(), Tensor.zeros([rank === 1 ? 3 : 4, 2], { dtype: "float64" }))

/** Rank 1 ends its own thread in the middle of the job; the others wait in a collective. */
export const exits = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const group = faultGroup((args as { world: number }).world)
    if (rank === 1) {
      yield* Effect.sleep(20)
      process.exit(7)
    }
    return yield* Comm.allReduce(group, x())
  })

/** Rank 1 throws outside any fiber (an uncaught exception ends its thread). */
export const crashes = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    if (rank === 1) {
      setTimeout(() => {
        throw new Error("uncaught in rank 1")
      }, 10)
      yield* Effect.sleep(100)
    }
    return yield* Comm.allReduce(faultGroup((args as { world: number }).world), x())
  })

/** Every rank ticks a shared counter from a forked fiber; rank 0 fails after a while. */
export const ticker = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const ticks = new Int32Array((args as { ticks: SharedArrayBuffer }).ticks)
    yield* Effect.forkChild(
      Effect.forever(
        Effect.andThen(
          Effect.sleep(1),
          Effect.sync(() => void Atomics.add(ticks, 0, 1)),
        ),
      ),
    )
    if (rank === 0) {
      yield* Effect.sleep(30)
      return yield* Effect.fail("rank 0 gives up")
    }
    return yield* Effect.never
  })

/** A busy loop that never yields: only terminate() stops it. */
export const spins = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const group = faultGroup((args as { world: number }).world)
    if (rank === 0) return yield* Effect.fail("rank 0 fails while rank 1 spins")
    if (rank === 1)
      yield* Effect.sync(() => {
        for (;;) {
          // spin
        }
      })
    return yield* Comm.barrier(group)
  })

export const waitsForever = () => Effect.never

export const recvNobody = (rank: number) => (rank === 0 ? Comm.recv(1) : Effect.never)

/**
 * Rank 0 fails; the others wait in a collective (uninterruptibly, so they see how it ends) and
 * write what they saw into a shared array: 1 for a CommError with reason Closed.
 */
export const closedSeen = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, seen } = args as { world: number; seen: SharedArrayBuffer }
    if (rank === 0) {
      yield* Effect.sleep(30)
      return yield* Effect.fail("rank 0 fails")
    }
    const exit = yield* Effect.uninterruptible(Effect.exit(Comm.allReduce(faultGroup(world), x())))
    const error = exit._tag === "Failure" ? (exit.cause.reasons[0] as { error?: { reason?: string } } | undefined)?.error : undefined
    Atomics.store(new Int32Array(seen), rank, error?.reason === "Closed" ? 1 : 2)
    return yield* Effect.never
  })

/** A result that cannot be structured-cloned. */
export const unclonable = () => Effect.succeed(() => 1)

export const notAFunction = 42

/** Rank 0 declares one row too many from member 1 in a chunked allToAllV. */
export const chunkedMismatch = (rank: number, args: unknown) => {
  const group = faultGroup((args as { world: number }).world)
  const recvSplits = [1, 0, 1, 0, 1, 0, 1, 0].map((n, i) => (rank === 0 && i === 2 ? n + 1 : n))
  return Effect.flatMap(Comm.Communicator, (comm) =>
    Effect.flatMap(
      comm.issue(group, {
        op: "allToAllV",
        tensor: Tensor.zeros([4, 1], { dtype: "float64" }),
        chunks: 2,
        chunkOrder: "received",
        sendSplits: [1, 0, 1, 0, 1, 0, 1, 0],
        recvSplits,
      }),
      (p) => p.await,
    ),
  )
}

/** Rank 0 gives a chunked allToAllV a recvSplits one entry short. */
export const chunkedBadArgs = (rank: number, args: unknown) => {
  const group = faultGroup((args as { world: number }).world)
  const splits = [1, 0, 1, 0, 1, 0, 1, 0]
  const recvSplits = rank === 0 ? splits.slice(1) : splits
  return Effect.flatMap(Comm.Communicator, (comm) =>
    Effect.flatMap(
      comm.issue(group, { op: "allToAllV", tensor: Tensor.zeros([4, 1], { dtype: "float64" }), chunks: 2, chunkOrder: "received", sendSplits: splits, recvSplits }),
      (p) => p.await,
    ),
  )
}
