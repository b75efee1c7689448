// Bandwidth and latency of the threads backend (a script, not a test; the rank programs can be
// reused by a bench suite): 8 ranks, allToAllV with receive buffers reused across iterations
// (as bench/suites/comm.ts does for the local backend), in copying and zero-copy mode; a large
// allReduce; and the latency of a tiny allReduce on 1, 2 and 8 ranks, beside the wake-up floor
// of bare threads (wakeFloor).
// Run: node --import tsx bench/programs/threads.ts [perPeerKiB...]
// Per-rank bandwidth = bytes one rank sends (world x perPeer, self block included) / time of
// one collective, all ranks running at once; the suite's metric is 2 x delivered bytes / time.
import * as Effect from "effect/Effect"
import { isMainThread } from "node:worker_threads"
import * as Comm from "../../dist/comm/Communicator.js"
import * as Cpu from "../../dist/native/Cpu.js"
import * as Group from "../../dist/comm/Group.js"
import * as Tensor from "../../dist/tensor/Tensor.js"
import * as ThreadsJob from "../../dist/runtime/ThreadsJob.js"

interface Args {
  readonly world: number
  readonly perPeer: number
  readonly iterations: number
  readonly warmup: number
  readonly shared: boolean
}

/** Seconds per allToAllV (perPeer bytes to each member), timed over `iterations`. */
export const allToAllV = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, perPeer, iterations, warmup, shared } = args as Args
    const group = Group.world(world)
    const floats = perPeer / 4
    const input = Tensor.fromArray(new Float32Array(world * floats).fill(rank), [world, floats], { shared })
    const receive = Tensor.zeros([world, floats])
    const splits = new Array<number>(world).fill(1)
    for (let i = 0; i < warmup; i++) yield* Comm.allToAllV(group, input, splits, receive)
    yield* Comm.barrier(group)
    const started = performance.now()
    for (let i = 0; i < iterations; i++) yield* Comm.allToAllV(group, input, splits, receive)
    yield* Comm.barrier(group)
    const seconds = (performance.now() - started) / 1000 / iterations
    if (receive.data[floats * ((rank + 1) % world)] !== (rank + 1) % world) return yield* Effect.die(new Error("wrong data"))
    return seconds
  })

/** Seconds per allReduce of perPeer bytes (float32) into a reused receive buffer. */
export const allReduce = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, perPeer, iterations, warmup } = args as Args
    const group = Group.world(world)
    const x = Tensor.fromArray(new Float32Array(perPeer / 4).fill(rank), [perPeer / 4])
    const receive = Tensor.zeros([perPeer / 4])
    // The plain allReduce takes no receive buffer; the Communicator's issue does.
    const once = Effect.flatMap(Comm.Communicator, (c) => Effect.flatMap(c.issue(group, { op: "allReduce", tensor: x, reduce: "sum", out: receive }), (p) => p.await))
    for (let i = 0; i < warmup; i++) yield* once
    yield* Comm.barrier(group)
    const started = performance.now()
    for (let i = 0; i < iterations; i++) yield* once
    yield* Comm.barrier(group)
    return (performance.now() - started) / 1000 / iterations
  })

/** Seconds per 8-byte allReduce. */
export const tinyAllReduce = (_rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, iterations, warmup } = args as Args
    const group = Group.world(world)
    const x = Tensor.zeros([1, 2])
    for (let i = 0; i < warmup; i++) yield* Comm.allReduce(group, x)
    const started = performance.now()
    for (let i = 0; i < iterations; i++) yield* Comm.allReduce(group, x)
    return (performance.now() - started) / 1000 / iterations
  })

/**
 * Copy bandwidth of one rank in GB/s (read + write bytes, as limits.memcpyBandwidth counts), all
 * ranks copying at once: `iterations` native copies between two buffers of `perPeer` bytes of
 * the rank's own, after a barrier (so the job's ranks copy together) and `warmup` untimed copies.
 * The sum over a job with a rank per core is the machine's copy bandwidth on all cores (two
 * cores of these VMs copy ~1.65x what one does, not 2x).
 */
export const copyBandwidth = (_rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, perPeer, iterations, warmup } = args as Args
    const src = new Uint8Array(perPeer).fill(1)
    // Touched, so that page faults of fresh memory are not timed.
    const dst = new Uint8Array(perPeer).fill(2)
    for (let i = 0; i < warmup; i++) Cpu.copy(dst, src)
    yield* Comm.barrier(Group.world(world))
    const started = performance.now()
    for (let i = 0; i < iterations; i++) Cpu.copy(dst, src)
    return (2 * perPeer * iterations) / ((performance.now() - started) / 1000) / 1e9
  })

/** Seconds per barrier: the synchronisation every collective pays (the tiny allReduce's floor). */
export const tinyBarrier = (_rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, iterations, warmup } = args as Args
    const group = Group.world(world)
    for (let i = 0; i < warmup; i++) yield* Comm.barrier(group)
    const started = performance.now()
    for (let i = 0; i < iterations; i++) yield* Comm.barrier(group)
    return (performance.now() - started) / 1000 / iterations
  })

/**
 * Seconds per barrier of bare worker threads: every thread adds itself to a shared count, the
 * last one rings the others' doorbells (Atomics.notify), the rest wait with Atomics.waitAsync.
 * No Effect, no communicator: the floor that waking sleeping threads puts under any collective
 * of this many ranks on this machine. `args.sab` is shared by the job's ranks.
 */
export const wakeFloor = (rank: number, args: unknown) =>
  Effect.promise(async () => {
    const { world, iterations, warmup, sab } = args as Args & { readonly sab: SharedArrayBuffer }
    const v = new Int32Array(sab)
    const count = 16 * world
    let round = 0
    const barrier = () =>
      new Promise<void>((resolve) => {
        const target = ++round * world
        if (Atomics.add(v, count, 1) + 1 === target) {
          for (let r = 0; r < world; r++) {
            if (r === rank) continue
            Atomics.add(v, 16 * r, 1)
            Atomics.notify(v, 16 * r)
          }
          return resolve()
        }
        const check = (): void => {
          const seen = Atomics.load(v, 16 * rank)
          if (Atomics.load(v, count) >= target) return resolve()
          const wait = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, x: number) => { async: boolean; value: Promise<string> | string } }).waitAsync(
            v,
            16 * rank,
            seen,
          )
          if (wait.async) void (wait.value as Promise<string>).then(check)
          else check()
        }
        check()
      })
    for (let i = 0; i < warmup; i++) await barrier()
    const started = performance.now()
    for (let i = 0; i < iterations; i++) await barrier()
    return (performance.now() - started) / 1000 / iterations
  })

/** The shared memory `wakeFloor` needs for `world` ranks. */
export const wakeFloorMemory = (world: number): SharedArrayBuffer => new SharedArrayBuffer(64 * (world + 1))

// The machine is shared: each figure is the best of `repeats` jobs (the slowest rank of each).
const best = async (repeats: number, options: ThreadsJob.ThreadsJobOptions): Promise<number> => {
  let t = Number.POSITIVE_INFINITY
  for (let i = 0; i < repeats; i++) t = Math.min(t, Math.max(...(await ThreadsJob.runPromise<number>(options))))
  return t
}

const main = async () => {
  const world = 8
  const module = import.meta.url
  const sizes = process.argv.slice(2).map((k) => Number(k) * 1024)
  for (const perPeer of sizes.length > 0 ? sizes : [4096, 65536, 1 << 20, 4 << 20, 16 << 20]) {
    for (const copy of [true, false]) {
      const iterations = perPeer >= 16 << 20 ? 3 : perPeer >= 1 << 20 ? 10 : 100
      const t = await best(3, { world, module, export: "allToAllV", copy, args: { world, perPeer, iterations, warmup: 2, shared: !copy } })
      const perRank = (world * perPeer) / t / 1e9
      const suite = (2 * world * world * perPeer) / t / 1e9
      console.log(
        `allToAllV 8 ranks ${perPeer / 1024} KiB/peer ${copy ? "copy" : "zero-copy"}: ${(t * 1e6).toFixed(0)} us, ${perRank.toFixed(2)} GB/s per rank, ${suite.toFixed(1)} GB/s (2 x delivered)`,
      )
    }
  }
  for (const bytes of [1 << 20, 8 << 20]) {
    const t = await best(3, { world, module, export: "allReduce", args: { world, perPeer: bytes, iterations: 10, warmup: 2, shared: false } })
    console.log(`allReduce 8 ranks ${bytes >> 20} MiB float32: ${(t * 1e6).toFixed(0)} us, ${(bytes / t / 1e9).toFixed(2)} GB/s per rank (bytes / time)`)
  }
  for (const w of [1, 2, 8]) {
    const t = await best(3, { world: w, module, export: "tinyAllReduce", args: { world: w, iterations: 2000, warmup: 200 } })
    console.log(`allReduce 8 B, ${w} rank${w > 1 ? "s" : ""}: ${(t * 1e6).toFixed(0)} us`)
    if (w === 1) continue
    const floor = await best(3, { world: w, module, export: "wakeFloor", args: { world: w, iterations: 2000, warmup: 200, sab: wakeFloorMemory(w) } })
    console.log(`  floor (bare threads, waitAsync barrier): ${(floor * 1e6).toFixed(0)} us`)
  }
}

// Run as a script on the main thread only (the rank workers import this module too).
if (isMainThread && process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "")) await main()
