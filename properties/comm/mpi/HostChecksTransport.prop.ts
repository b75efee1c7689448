// The MPI transport's hand-over to a DataEngine under each HostChecks, on a scripted MPI (a fake
// session whose signature exchange completes when the test says) and an engine that finishes at
// once: under "alongside" a fixed-size collective reaches the engine before its exchange
// completes, and its result waits for the verdict (a mismatch fails the member even though the
// engine already finished, naming both sides); under "first" the engine sees nothing until the
// members agree; an all-to-all waits for the exchange under both.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { describe, expect, test } from "vitest"
import { Communicator } from "../../../src/comm/Communicator.js"
import * as Comm from "../../../src/comm/Communicator.js"
import * as Endpoint from "../../../src/comm/Endpoint.js"
import * as Group from "../../../src/comm/Group.js"
import type { DataEngine } from "../../../src/comm/mpi/DataEngine.js"
import * as Header from "../../../src/comm/mpi/Header.js"
import type * as HostChecks from "../../../src/comm/mpi/HostChecks.js"
import type { Session } from "../../../src/comm/mpi/MpiSession.js"
import * as MpiTransport from "../../../src/comm/mpi/MpiTransport.js"
import * as NcclPlan from "../../../src/comm/nccl/NcclPlan.js"
import * as Tensor from "../../../src/tensor/Tensor.js"

/** Rank 0 of 2 on a scripted MPI: every op's completion is held until `complete` is called. */
const scripted = (hostChecks: HostChecks.HostChecks) => {
  const log: Array<string> = []
  const exchanges: Array<{ all: Float64Array; width: number; done: (error: string | undefined) => void }> = []
  let nextComm = 1
  let op: { id: number; done: (error: string | undefined) => void } | undefined
  const session = {
    rank: 0,
    size: 2,
    addon: {
      commCreate: () => undefined,
      commFree: () => undefined,
      allGather: (_id: number, _comm: number, mine: Float64Array, all: Float64Array, width: number) => {
        all.set(mine, 0)
        log.push("exchange issued")
        exchanges.push({ all, width, done: (op as { done: (error: string | undefined) => void }).done })
      },
    },
    op: (start: (id: number) => void, done: (error: string | undefined) => void) => {
      op = { id: 0, done }
      start(0)
    },
    commId: () => nextComm++,
    openJob: () => undefined,
    closeJob: () => undefined,
    onCensus: () => undefined,
    sendCensus: () => undefined,
  } as unknown as Session
  const engine: DataEngine = {
    backend: "nccl",
    start: (_group, _comm, request, parts, local, done) => {
      log.push(`engine ${request.op}`)
      // The result the plan of these signatures makes (values: the tensor's, or zeros).
      const { shape, splits } = NcclPlan.resultShape(parts, local)
      const data = request.op === "allToAllV" ? new Float64Array(shape.reduce((a, b) => a * b, 1)) : Float64Array.from(request.tensor.data)
      done({ ok: true, output: { data, shape, ...(splits === undefined ? {} : { splits }) } })
    },
    diagnose: () => undefined,
    close: () => undefined,
  }
  const transport = MpiTransport.make(session, { job: 1, world: 2, timeoutMs: 60_000, hostChecks }, engine)
  const comm = Endpoint.make(transport)
  /** Completes exchange `k` with member 1's signature as `other` declares it. */
  const complete = (k: number, other: Parameters<typeof Header.encode>[0]["signature"]) => {
    const e = exchanges[k] as (typeof exchanges)[number]
    Header.encode({ signature: other, buffer: undefined, fast: false }, 2, e.all, e.width)
    log.push("exchange done")
    e.done(undefined)
  }
  return { log, comm, complete, close: () => transport.close("the job ended") }
}

const group = Group.make("dp#0", [0, 1])
const x = Tensor.fromArray([1, 2], [1, 2], { dtype: "float64" })
/** Until the log holds `n` entries (the fiber reached the transport), however loaded the machine. */
const logged = async (log: ReadonlyArray<string>, n: number) => {
  for (let waited = 0; log.length < n && waited < 10_000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5))
}

describe("the MPI transport's hand-over to an engine", () => {
  test("alongside: a fixed-size collective reaches the engine before its exchange completes; its result waits for the verdict, which fails it on a mismatch", async () => {
    for (const theirs of ["sum", "max"] as const) {
      const s = scripted("alongside")
      const fiber = Effect.runFork(Effect.provideService(Comm.allReduce(group, x), Communicator, s.comm))
      await logged(s.log, 2)
      expect(s.log).toEqual(["exchange issued", "engine allReduce"])
      // The engine has finished, the verdict is not in: no result yet.
      expect(fiber.pollUnsafe()).toBeUndefined()
      s.complete(0, { op: "allReduce", rank: 1, dtype: "float64", shape: [1, 2], reduce: theirs })
      const exit = await Effect.runPromise(Fiber.await(fiber))
      if (theirs === "sum") expect(Exit.isSuccess(exit) && Array.from(exit.value.data)).toEqual([1, 2])
      else {
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(exit)).toContain("rank 0 issued allReduce(sum) float64 [1, 2]; rank 1 issued allReduce(max) float64 [1, 2]")
      }
      s.close()
    }
  })

  test("first: the engine sees nothing until the members agree; an all-to-all waits for the exchange under either", async () => {
    for (const checks of ["first", "alongside"] as const) {
      const s = scripted(checks)
      const ops = checks === "first" ? [Comm.allReduce(group, x)] : [Comm.allToAllV(group, x, [1, 0])]
      const fiber = Effect.runFork(Effect.provideService(ops[0] as Effect.Effect<unknown, unknown, Communicator>, Communicator, s.comm))
      await logged(s.log, 1)
      expect(s.log).toEqual(["exchange issued"])
      s.complete(
        0,
        checks === "first"
          ? { op: "allReduce", rank: 1, dtype: "float64", shape: [1, 2], reduce: "sum" }
          : { op: "allToAllV", rank: 1, dtype: "float64", shape: [1, 2], sendSplits: [1, 0] },
      )
      expect(s.log.slice(1)).toEqual(["exchange done", `engine ${checks === "first" ? "allReduce" : "allToAllV"}`])
      expect(Exit.isSuccess(await Effect.runPromise(Fiber.await(fiber)))).toBe(true)
      s.close()
    }
  })

  test("alongside: a chunked all-to-all (the MoE exchange) reaches the engine before its exchange completes, planned from its recvSplits, which must be what the others send", async () => {
    for (const theirs of [1, 2]) {
      const s = scripted("alongside")
      // Two chunks a member: rank 0 keeps its first row, sends rank 1 its second; it expects
      // one row from rank 1 (its recvSplits: [own chunks..., rank 1's chunks...]).
      const t = Tensor.fromArray([1, 2, 3, 4], [2, 2], { dtype: "float64" })
      const request: Comm.Request = { op: "allToAllV", tensor: t, chunks: 2, chunkOrder: "received", sendSplits: [1, 0, 0, 1], recvSplits: [1, 0, 1, 0] }
      const fiber = Effect.runFork(
        Effect.provideService(
          Effect.flatMap(Communicator, (c) => Effect.flatMap(c.issue(group, request), (p) => p.await)),
          Communicator,
          s.comm,
        ),
      )
      await logged(s.log, 2)
      expect(s.log).toEqual(["exchange issued", "engine allToAllV"])
      expect(fiber.pollUnsafe()).toBeUndefined()
      // Rank 1's signature as the lowering sends it: rows per member, `theirs` of them to rank 0.
      s.complete(0, { op: "allToAllV", rank: 1, dtype: "float64", shape: [theirs + 1, 2], sendSplits: [theirs, 1] })
      const exit = await Effect.runPromise(Fiber.await(fiber))
      if (theirs === 1) expect(Exit.isSuccess(exit)).toBe(true)
      else {
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(exit)).toContain("rank 0 expects 1 rows from rank 1 (its recvSplits) but rank 1 sends it 2")
      }
      s.close()
    }
  })
})
