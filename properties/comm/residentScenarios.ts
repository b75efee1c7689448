// A rank program of the NCCL suite (re-exported by scenarios.ts, where the runners find programs):
// collectives on tensors whose values are in device memory (the simulated device, sim:0, one per
// process). On the NCCL backend the engine sends from the device arrays and receives into new
// ones (DeviceRuntime.inPlace), so the results are resident and nothing crosses to the host
// while they run; every other backend reads the host's copies. Either way the values are the
// same: that is what the suite compares with the local backend, and on NCCL it also checks
// `resident` and `moved`.
import * as Effect from "effect/Effect"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { groupOf, type MappingArgs, valuesOf } from "./scenarios.js"

export const residentCollectives = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, c, pattern } = args as { mapping: MappingArgs; c: number; pattern: ReadonlyArray<number> }
    // A group of one keeps its rows on the device too (the transport's copy there).
    const group = groupOf(mapping, rank)
    const n = group.ranks.length
    const runtime = simulated(0)
    const onDevice = (values: ReadonlyArray<number>, shape: ReadonlyArray<number>, dtype: "float32" | "float64") => to(Tensor.fromArray(values, shape, { dtype }), Device.sim(0))
    const x = onDevice(valuesOf(rank, 2 * n * c), [2 * n, c], "float32")
    const y = onDevice(valuesOf(rank, 2 * n * c, 1), [2 * n, c], "float64")
    const splits = group.ranks.map((_, j) => pattern[(rank + j) % pattern.length] as number)
    const rows = splits.reduce((a, b) => a + b, 0)
    const z = onDevice(valuesOf(rank, rows * c, 2), [rows, c], "float32")
    const before = { ...runtime.transfers }
    const sum = yield* Comm.allReduce(group, x)
    const max = yield* Comm.allReduce(group, y, "max")
    const gathered = yield* Comm.allGather(group, x)
    const scattered = yield* Comm.reduceScatter(group, y)
    const exchanged = yield* Comm.allToAllV(group, z, splits)
    const back = yield* Comm.allToAllV(group, exchanged.tensor, exchanged.recvSplits)
    const results = [sum, max, gathered, scattered, exchanged.tensor, back.tensor]
    // Counted before anything reads a result on the host.
    const moved = runtime.transfers.uploads - before.uploads + runtime.transfers.downloads - before.downloads
    return {
      resident: results.map((t) => t.isResident && Device.same(t.device, Device.sim(0))),
      moved,
      values: results.map((t) => Array.from(t.readHost())),
      recvSplits: exchanged.recvSplits,
    }
  })

/** One message of residentP2p: rows of 3 values, on the device or the host, on tag a or b. */
export interface P2pMessage {
  readonly rows: number
  readonly dtype: "float32" | "float64"
  readonly resident: boolean
  readonly tag: "a" | "b"
}

/**
 * Each rank sends `messages` to the next rank of a ring, device-resident and host tensors mixed
 * on two tags, then receives the previous rank's: tag b's first, then tag a's. On the NCCL
 * backend the resident ones (of at least one element) travel on NCCL links, announced over MPI,
 * and arrive resident; the host ones are MPI frames. Whatever carried them, each tag's messages
 * arrive in the order sent, with the values sent.
 */
export const residentP2p = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, messages } = args as { world: number; messages: ReadonlyArray<P2pMessage> }
    const next = (rank + 1) % world
    const prev = (rank + world - 1) % world
    const runtime = simulated(0)
    for (const [i, m] of messages.entries()) {
      const host = Tensor.fromArray(valuesOf(rank, m.rows * 3, i), [m.rows, 3], { dtype: m.dtype })
      yield* Comm.send(next, m.resident ? to(host, Device.sim(0)) : host, m.tag)
    }
    // And one to itself (a link joins two ranks: this one goes as a frame).
    yield* Comm.send(rank, to(Tensor.fromArray(valuesOf(rank, 6, 99), [2, 3], { dtype: "float32" }), Device.sim(0)), "self")
    const self = yield* Comm.recv(rank, "self")
    const before = { ...runtime.transfers }
    const got: Array<{ index: number; t: Tensor.Tensor }> = []
    for (const tag of ["b", "a"] as const) for (const [index, m] of messages.entries()) if (m.tag === tag) got.push({ index, t: yield* Comm.recv(prev, tag) })
    // Counted before anything reads a received tensor on the host.
    const moved = runtime.transfers.uploads - before.uploads + runtime.transfers.downloads - before.downloads
    return {
      moved,
      self: Array.from(self.readHost()),
      received: got.map(({ index, t }) => ({
        index,
        resident: t.isResident && Device.same(t.device, Device.sim(0)),
        dtype: t.dtype,
        shape: [...t.shape],
        values: Array.from(t.readHost()),
      })),
    }
  })

/**
 * A program bug: rank 0 sends a device-resident tensor to rank 1, which ends without receiving
 * it. On the NCCL backend the link rank 0 opens is never joined: the job's result stands, and the
 * process ends by MPI_Abort naming the waiting work instead of hanging (MpiProcess).
 */
export const unmatchedResidentSend = (rank: number, _args: unknown) =>
  Effect.gen(function* () {
    if (rank === 1) return "returned without receiving"
    yield* Effect.sleep(300)
    yield* Comm.send(1, to(Tensor.fromArray(valuesOf(rank, 8), [2, 4], { dtype: "float32" }), Device.sim(0)), "never")
    return "sent"
  })

/**
 * Rank 0 has `n` collectives of the world group in flight (NCCL's runs each wait on a worker
 * thread for rank 1) when it opens its first link to rank 1, which joins the link before it
 * issues its own collectives. With the link's set-up on libuv's pool (4 threads) behind those
 * waits, n = 4 deadlocked; on a thread of its own it cannot (cuda/src/thread_work.h).
 */
export const collectivesInFlightThenLink = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { n } = args as { n: number }
    const world = Group.make("world", [0, 1])
    const small = () => Tensor.fromArray(valuesOf(rank, 4), [4], { dtype: "float32" })
    yield* Comm.allReduce(world, small()) // the group's communicator is made
    const pending = []
    if (rank === 0) {
      for (let i = 0; i < n; i++) pending.push(yield* Comm.start.allReduce(world, small()))
      yield* Effect.sleep(100)
      yield* Comm.send(1, to(Tensor.fromArray(valuesOf(rank, 64), [16, 4], { dtype: "float32" }), Device.sim(0)), "x")
      for (const p of pending) yield* p.await
      return "sent"
    }
    const got = yield* Comm.recv(0, "x")
    for (let i = 0; i < n; i++) pending.push(yield* Comm.start.allReduce(world, small()))
    for (const p of pending) yield* p.await
    return Array.from(got.readHost())
  })
