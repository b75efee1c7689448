/**
 * mpiComm: pleat's side of the bench suite `mpi`, the twin of the engine's own program
 * (cuda/src/mpi/engine_bench.cc, built as build/Release/pleat_mpi_engine_bench). Run under
 * mpirun, one rank per process:
 *
 *   mpirun -np 4 node --import tsx bench/programs/mpiComm.ts [--sizes-mib 1,4,16] [--reps 7]
 *     [--latency-reps 9] [--latency-batch 100] [--backend mpi|nccl]
 *
 * (`--backend nccl` runs the same job on the NCCL backend: NCCL's library, or the host stand-in
 * through PLEAT_NCCL_LIB; PLEAT_DISTRIBUTED_DEBUG chooses its host checks.)
 *
 * Rank 0 starts one job on the MPI backend (MpiProcess.main, MpiBackend.layer) whose rank
 * program `measure` times, on the group of all ranks, what the engine program times with the
 * same sizes, buffers and timing: Communicator.allToAllV (N bytes of float32 to every member)
 * and Communicator.allGather (N bytes from every member), each into a receive buffer allocated
 * once and reused, and the latency of a 1-float allReduce and of a barrier. A repetition is a
 * barrier, then `iterations` collectives timed on every rank; its time is the slowest rank's,
 * per collective; printed is the median repetition after the same warm-up. Rank 0 prints one
 * JSON line per measurement, the engine program's shape with "program":"pleat":
 *
 *   {"program":"pleat","op":"allToAllV","ranks":4,"bytesPerPeer":1048576,"seconds":0.0012,
 *    "reps":7,"iterations":4}
 *
 * The data is checked as the engine program checks it (every member's block holds that
 * member's value); a wrong block fails the job.
 *
 * Two more lines say where pleat's latency goes (the engine program has no twin of them): the
 * 1-float allReduce through the addon alone, one op and then pleat's two steps (addonLatency).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import path from "node:path"
import { fileURLToPath } from "node:url"
import * as Comm from "../../dist/comm/Communicator.js"
import * as Group from "../../dist/comm/Group.js"
import * as Header from "../../dist/comm/mpi/Header.js"
import * as MpiSession from "../../dist/comm/mpi/MpiSession.js"
import * as MpiAddon from "../../dist/native/MpiAddon.js"
import * as Backend from "../../dist/runtime/Backend.js"
import * as MpiBackend from "../../dist/runtime/MpiBackend.js"
import * as MpiProcess from "../../dist/runtime/MpiProcess.js"
import * as NcclBackend from "../../dist/runtime/NcclBackend.js"
import * as RankProgram from "../../dist/runtime/RankProgram.js"
import * as Tensor from "../../dist/tensor/Tensor.js"

/** What both programs take (the engine program's flags). */
interface Options {
  readonly sizesMiB: ReadonlyArray<number>
  readonly reps: number
  readonly latencyReps: number
  readonly latencyBatch: number
  readonly backend: "mpi" | "nccl"
}

/** One measurement as a rank sees it: its own seconds per collective in each repetition. */
interface Samples {
  readonly op: "allToAllV" | "allGather" | "allReduce" | "barrier" | "addonAllReduce" | "addonSignedAllReduce"
  readonly bytesPerPeer: number
  readonly iterations: number
  readonly seconds: ReadonlyArray<number>
}

/** Collectives per repetition: about 16 MiB per rank and repetition, at least 2 (as the engine program). */
const iterationsFor = (bytes: number): number => Math.max(2, Math.floor((16 * 2 ** 20) / Math.max(1, bytes)))

/** Seconds per call of `once` on this rank, one figure per repetition. */
const repeat = <E, R>(group: Group.Group, reps: number, iterations: number, warmup: number, once: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < warmup; i++) yield* once
    const seconds: Array<number> = []
    for (let r = 0; r < reps; r++) {
      yield* Comm.barrier(group)
      const started = performance.now()
      for (let i = 0; i < iterations; i++) yield* once
      seconds.push((performance.now() - started) / 1000 / iterations)
    }
    return seconds
  })

/** Every member's block of `received` holds that member's value (rank + 1), as the engine program checks. */
const verify = (rank: number, received: Tensor.Tensor, world: number, floats: number, op: string) =>
  Effect.gen(function* () {
    for (let m = 0; m < world; m++) {
      const want = m + 1
      if (received.data[m * floats] !== want || received.data[m * floats + floats - 1] !== want) {
        return yield* Effect.die(new Error(`rank ${rank}: ${op} delivered a wrong block from member ${m}`))
      }
    }
  })

/**
 * The rank program: every measurement of the file header on this rank.
 * @category constructors
 */
export const measure = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { options, world } = args as { readonly options: Options; readonly world: number }
    const group = Group.world(world)
    const out: Array<Samples> = []
    for (const mib of options.sizesMiB) {
      const floats = Math.floor((mib * 2 ** 20) / 4)
      const bytes = floats * 4
      const iterations = iterationsFor(bytes)
      // Allocated once, reused by every call, as in the engine program.
      const send = Tensor.fromArray(new Float32Array(world * floats).fill(rank + 1), [world, floats])
      const gatherInput = Tensor.fromArray(new Float32Array(floats).fill(rank + 1), [1, floats])
      const receive = Tensor.zeros([world, floats])
      const splits = new Array<number>(world).fill(1)
      const a2a = yield* repeat(group, options.reps, iterations, 2, Comm.allToAllV(group, send, splits, receive))
      yield* verify(rank, receive, world, floats, "allToAllV")
      out.push({ op: "allToAllV", bytesPerPeer: bytes, iterations, seconds: a2a })
      receive.data.fill(0)
      const gather = yield* repeat(group, options.reps, iterations, 2, Comm.allGather(group, gatherInput, receive))
      yield* verify(rank, receive, world, floats, "allGather")
      out.push({ op: "allGather", bytesPerPeer: bytes, iterations, seconds: gather })
    }
    const batch = options.latencyBatch
    const one = Tensor.fromArray([1], [1])
    let sum = 0
    const reduce = yield* repeat(
      group,
      options.latencyReps,
      batch,
      batch,
      Effect.map(Comm.allReduce(group, one), (t) => {
        sum = t.data[0] as number
      }),
    )
    if (sum !== world) return yield* Effect.die(new Error(`rank ${rank}: allReduce gave ${sum}, not ${world}`))
    out.push({ op: "allReduce", bytesPerPeer: 4, iterations: batch, seconds: reduce })
    const barrier = yield* repeat(group, options.latencyReps, batch, batch, Comm.barrier(group))
    out.push({ op: "barrier", bytesPerPeer: 0, iterations: batch, seconds: barrier })
    out.push(...(yield* addonLatency(group, options)))
    return out
  })

/**
 * Where pleat's latency goes: the same 1-float allReduce through the addon alone (MpiSession,
 * no transport, no Effect), awaited from JS as a Promise: one op (`addonAllReduce`: one trip
 * from the JS thread to the engine thread and back), then pleat's two steps (`addonSignedAllReduce`:
 * the allgather of a signature row of Header.length(P) float64, then the allReduce).
 */
const addonLatency = (group: Group.Group, options: Options) =>
  Effect.gen(function* () {
    const session = MpiSession.running()
    if (session === undefined) return []
    const op = (start: (id: number) => void, keep: ReadonlyArray<unknown>) =>
      Effect.callback<void, Error>((resume) => session.op(start, (error) => resume(error === undefined ? Effect.void : Effect.fail(new Error(error))), keep))
    const comm = session.commId()
    const ranks = Int32Array.from(group.ranks)
    yield* op((id) => session.addon.commCreate(id, comm, ranks, 0), [ranks])
    const x = new Float32Array([1])
    const y = new Float32Array(1)
    const width = Header.length(group.ranks.length)
    const mine = new Float64Array(width)
    const all = new Float64Array(width * group.ranks.length)
    const allReduce = op((id) => session.addon.allReduce(id, comm, x, y, 1, MpiAddon.TYPE.float32, MpiAddon.OP.sum), [x, y])
    const signatures = op((id) => session.addon.allGather(id, comm, mine, all, width, MpiAddon.TYPE.float64), [mine, all])
    const batch = options.latencyBatch
    const one = yield* repeat(group, options.latencyReps, batch, batch, allReduce)
    const two = yield* repeat(group, options.latencyReps, batch, batch, Effect.andThen(signatures, allReduce))
    yield* op((id) => session.addon.commFree(id, comm), [])
    return [
      { op: "addonAllReduce", bytesPerPeer: 4, iterations: batch, seconds: one },
      { op: "addonSignedAllReduce", bytesPerPeer: 4, iterations: batch, seconds: two },
    ] satisfies Array<Samples>
  })

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

/** The JSON lines of every measurement from every rank's samples (slowest rank per repetition, median repetition). */
const linesOf = (perRank: ReadonlyArray<ReadonlyArray<Samples>>, world: number): Array<string> =>
  (perRank[0] ?? []).map((m, k) => {
    const slowest = m.seconds.map((_, r) => Math.max(...perRank.map((samples) => samples[k]?.seconds[r] ?? Number.NaN)))
    return JSON.stringify({ program: "pleat", op: m.op, ranks: world, bytesPerPeer: m.bytesPerPeer, seconds: median(slowest), reps: m.seconds.length, iterations: m.iterations })
  })

const usage = "usage: mpirun -np P node --import tsx bench/programs/mpiComm.ts [--sizes-mib 1,4,16] [--reps 7] [--latency-reps 9] [--latency-batch 100] [--backend mpi|nccl]\n"

const parse = (argv: ReadonlyArray<string>): Options | undefined => {
  let sizesMiB: ReadonlyArray<number> = [1, 4, 16]
  let reps = 7
  let latencyReps = 9
  let latencyBatch = 100
  let backend: "mpi" | "nccl" = "mpi"
  for (let i = 0; i < argv.length; i += 2) {
    const value = argv[i + 1]
    if (value === undefined) return undefined
    if (argv[i] === "--sizes-mib") sizesMiB = value.split(",").map(Number)
    else if (argv[i] === "--reps") reps = Number(value)
    else if (argv[i] === "--latency-reps") latencyReps = Number(value)
    else if (argv[i] === "--latency-batch") latencyBatch = Number(value)
    else if (argv[i] === "--backend" && (value === "mpi" || value === "nccl")) backend = value
    else return undefined
  }
  const counts = [reps, latencyReps, latencyBatch]
  if (sizesMiB.length === 0 || sizesMiB.some((s) => !(s > 0)) || counts.some((n) => !Number.isInteger(n) || n <= 0)) return undefined
  return { sizesMiB, reps, latencyReps, latencyBatch, backend }
}

/** Rank 0's command: the job, then its lines on stdout. */
const command = async (): Promise<number> => {
  const options = parse(process.argv.slice(2))
  if (options === undefined) {
    process.stderr.write(usage)
    return 2
  }
  const world = MpiProcess.worldSize()
  const job = Backend.run<ReadonlyArray<Samples>>({ world, program: RankProgram.make(import.meta.url, "measure", { options, world }), timeoutMs: 120_000 })
  // A failed job still ends in an exit status, so that rank 0 tells the others to exit.
  const exit = await Effect.runPromiseExit(Effect.provide(job, options.backend === "nccl" ? NcclBackend.layer() : MpiBackend.layer()))
  if (Exit.isFailure(exit)) {
    process.stderr.write(`mpiComm: the job failed: ${Cause.pretty(exit.cause)}\n`)
    return 1
  }
  for (const line of linesOf(exit.value, world)) process.stdout.write(`${line}\n`)
  return 0
}

// The entry point only when run as a script: the other ranks import this module for `measure`,
// so the module must finish loading without waiting for the command (no top-level await).
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!MpiProcess.launched()) {
    process.stderr.write(`mpiComm runs under an MPI launcher, one rank per process\n${usage}`)
    process.exitCode = 2
  } else {
    void MpiProcess.main(command, (line) => process.stderr.write(line)).then(
      (code) => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`mpiComm failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
        process.exit(1)
      },
    )
  }
}
