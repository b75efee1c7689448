/**
 * moe: permute / unpermute bandwidth, dispatcher throughput, and the parallel overhead of the
 * MoE layer, each against a limit measured in the same run.
 *
 * permute+unpermute (float32, T = 16384 tokens): permute copies N = T*k rows of H floats,
 * unpermute scatter-adds them back; counted like memcpy (each byte read once and written once):
 * 2 * N*H*4 per pass, 4 * N*H*4 for the pair. Limit: memcpyBandwidth(N*H*4).
 * dispatcher (all-to-all, identity experts, T = 2048 tokens of H = 1024 per rank, E = 16, k 2):
 * tokens per second through dispatch + combine at EP 1, 2, 4, 8 on the local backend, the mean
 * step of one job (its start-up and its heap's growth to its peak not counted), with the probs applied at the combine (the
 * unpermute weighting each row as it sums: DispatchInput.probsAt) and by the experts (a multiply
 * of the rows by their probs between the exchanges, as the experts apply them before fc2).
 * Limit: the tokens per second a memcpy of the same bytes allows (each routed row crosses twice).
 * Both are steady state, after untimed calls (25 for permute + unpermute, 40 steps for the
 * dispatcher), as a training loop runs them: the first calls of a process touch fresh heap
 * pages, 10-30x slower on this VM. Permute + unpermute take
 * the median of the timed calls: a call that the garbage collector's timing sends to fresh
 * pages again is an outlier, not the cost of the dispatch (the mean is logged beside it).
 * layer overhead: the MoE layer forward + backward on 8 ranks (attention TP2 x CP2 x DP2 folded
 * into EP8) against the same layer on one rank with all tokens and experts (same FLOPs, and the
 * local backends run every rank on this thread): value = time(8 ranks) / time(1 rank), limit
 * 1 (the one-rank run measured here: no overhead), target 1.5 (the budget). In both
 * modes: "local", the copying mode `pleat train` uses (every collective result copied into
 * each member's own buffer), and "local-zero-copy" (equal results shared).
 */
import v8 from "node:v8"
import { runInNewContext } from "node:vm"
import * as Effect from "effect/Effect"
import * as Comm from "../../dist/comm/Communicator.js"
import * as Group from "../../dist/comm/Group.js"
import * as ParallelConfig from "../../dist/mapping/ParallelConfig.js"
import * as AllToAllDispatcher from "../../dist/moe/AllToAllDispatcher.js"
import * as MoeLayer from "../../dist/moe/MoeLayer.js"
import * as Permute from "../../dist/moe/Permute.js"
import * as RoutingMap from "../../dist/moe/RoutingMap.js"
import * as Job from "../../dist/runtime/Job.js"
import { mul } from "../../dist/tensor/ops/Elementwise.js"
import * as Reduce from "../../dist/tensor/ops/Reduce.js"
import { reshape, rows } from "../../dist/tensor/ops/Shape.js"
import * as Tape from "../../dist/tensor/Tape.js"
import * as StorageRecycler from "../../dist/tensor/StorageRecycler.js"
import * as Tensor from "../../dist/tensor/Tensor.js"
import { type BenchContext, type BenchRecord, record, wallSeconds } from "../harness.js"
import { memcpyBandwidth } from "../limits.js"

let seed = 7
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
const tensor = (shape: Array<number>, dtype: "float32" | "float64" = "float32") => {
  const t = Tensor.zeros(shape, { dtype })
  for (let i = 0; i < t.size; i++) t.data[i] = random() * 0.5
  return t
}

/** A map where token t picks k distinct experts (round-robin from a random start). */
const mapOf = (t: number, e: number, k: number) => {
  const mask = new Uint8Array(t * e)
  for (let i = 0; i < t; i++) {
    const start = Math.floor(((random() + 1) / 2) * e) % e
    for (let j = 0; j < k; j++) mask[i * e + ((start + j * Math.max(1, Math.floor(e / k))) % e)] = 1
  }
  return RoutingMap.make(t, e, mask)
}

/** The median of `times` (ms) in seconds. */
const medianSeconds = (times: Array<number>): number => {
  const sorted = [...times].sort((a, b) => a - b)
  return (sorted[Math.floor(sorted.length / 2)] as number) / 1000
}

/**
 * A full garbage collection between calls, outside the timed part: each permute + unpermute
 * call leaves ~200 MB of dead output, and a process started with --no-concurrent-marking (as
 * pleat and the bench are) frees none of it for its first ~20 such calls, so every call faulted
 * in fresh pages (the suite's first case read 0.07-0.27 of memcpy in some runs, 0.95 in others);
 * a training step allocates far less between collections. V8's gc, exposed at run time.
 */
const collectGarbage: () => void = (() => {
  v8.setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
})()

/**
 * Steady-state seconds of `fn`: the median of `timed` calls after `warm` untimed ones; logs the
 * mean too, so an outlier-heavy case shows.
 */
const steadySeconds = async (ctx: BenchContext, name: string, fn: () => unknown, warm: number, timed: number): Promise<number> => {
  for (let i = 0; i < warm; i++) {
    await fn()
    collectGarbage()
  }
  const times: Array<number> = []
  for (let i = 0; i < timed; i++) {
    const started = performance.now()
    await fn()
    times.push(performance.now() - started)
    collectGarbage()
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length
  ctx.log(`moe: ${name}: median ${(medianSeconds(times) * 1e3).toFixed(1)} ms, mean ${mean.toFixed(1)} ms of ${timed} after ${warm} untimed`)
  return medianSeconds(times)
}

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const out: Array<BenchRecord> = []
  const t = 16384
  for (const h of [1024, 4096]) {
    const x = tensor([t, h])
    for (const e of [8, 64]) {
      for (const k of [2, 8]) {
        const map = mapOf(t, e, k)
        const n = t * k
        const pair = () => {
          const p = Permute.permute(x, map)
          Permute.unpermute(p.permuted, p.sortedIndices, t)
        }
        // Untimed calls first (the kernels' first calls), each followed by a collection (above).
        const seconds = await steadySeconds(ctx, `permute+unpermute H${h} E${e} k${k}`, pair, 5, h * k > 8192 ? 7 : 9)
        const limit = await memcpyBandwidth(n * h * 4)
        out.push(record(ctx, { case: `permute+unpermute T${t} H${h} E${e} k${k}`, metric: "bandwidth", value: (4 * n * h * 4) / seconds / 1e9, unit: "GB/s", limit }))
      }
    }
  }

  // Dispatcher throughput with identity experts, the probs applied at the combine (fused with
  // its sum: two sweeps over the rows) and by the experts (a third: the multiply on the rows).
  const tokens = 2048
  const hidden = 1024
  const experts = 16
  const identity = (r: Tensor.Tensor, p: Tensor.Tensor | undefined) => (p === undefined ? r : mul(r, reshape(p, [p.shape[0] as number, 1])))
  for (const probsAt of ["combine", "experts"] as const)
    for (const ep of [1, 2, 4, 8]) {
      const config = ParallelConfig.make({ world: ep, ep, etp: 1 })
      const xs = Array.from({ length: ep }, () => tensor([tokens, hidden]))
      const maps = Array.from({ length: ep }, () => mapOf(tokens, experts, 2))
      const probs = maps.map((m) =>
        Tensor.fromArray(
          Array.from(m.mask, (v) => v * 0.5),
          [tokens, experts],
        ),
      )
      const empty = Tensor.zeros([0, 0, 0])
      // One job runs `warm` untimed steps, then `timed` steps between two barriers (rank 0's
      // clock): the steps of a training loop, without the job's start-up or its heap's growth to
      // its peak in the figure. A job's heap grows to its peak over its first tens of steps (the
      // garbage collector frees each step's buffers only later), and each step of that growth
      // faults in fresh pages: an EP 2 job took 28-30 ms a step for its first ~35 steps and 9-14
      // ms after (2026-12-02, Zen 4; resident memory flat after that).
      const warm = 40
      const timed = 20
      const [elapsed] = await Job.runPromise({ world: ep, backend: "local-zero-copy" }, (rank) =>
        Effect.gen(function* () {
          const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
          const dispatch = AllToAllDispatcher.run({
            tokens: xs[rank] as Tensor.Tensor,
            probs: probs[rank] as Tensor.Tensor,
            map: maps[rank] as RoutingMap.RoutingMap,
            numExperts: experts,
            experts: { wGate: empty, wUp: empty, wDown: empty },
            groups,
            compute: identity,
            // The identity retains nothing: off the tape the rows' memory (and its product's with
            // the probs) serves the next step (tensor/StorageRecycler.ts), as with the built-in experts.
            computeRetains: false,
            probsAt,
          })
          // The layer's output goes back to the recycler, as in training, where its storage
          // returns once the backward no longer needs it (tensor/ActivationRelease.ts). Left to
          // the collector, every step's outputs (8 MiB a rank) were fresh memory faulted in again:
          // EP 4 at 533-633k tokens/s against 829-959k, EP 8 619-717k against 745-868k
          // (2026-12-04, Zen 5, compiled JS, interleaved).
          const step = Effect.map(dispatch, (routed) => StorageRecycler.recycleTensor(routed.output))
          for (let i = 0; i < warm; i++) yield* step
          yield* Comm.barrier(groups.ep)
          const started = performance.now()
          for (let i = 0; i < timed; i++) yield* step
          yield* Comm.barrier(groups.ep)
          return performance.now() - started
        }),
      )
      const seconds = (elapsed as number) / timed / 1000
      ctx.log(`moe: dispatcher EP${ep}, probs at ${probsAt}: ${(seconds * 1e3).toFixed(1)} ms per step (mean of ${timed} after ${warm} untimed, one job)`)
      const rowBytes = hidden * 4
      const bytes = ep * tokens * 2 * rowBytes * 2
      const copy = await memcpyBandwidth(Math.min(bytes, 256 * 2 ** 20))
      const limit = (copy * 1e9) / (2 * 2 * 2 * rowBytes) // tokens/s if every byte of the 2 crossings moved at copy speed (read + write)
      out.push(
        record(ctx, {
          case: `all-to-all dispatch+combine EP${ep} (T ${tokens}/rank, H ${hidden}, E ${experts}, k 2, probs at ${probsAt})`,
          metric: "throughput",
          value: (ep * tokens) / seconds,
          unit: "tokens/s",
          limit,
        }),
      )
    }

  // Layer overhead: 8 ranks against one, same tokens, experts and FLOPs.
  const layer = { t: 256, h: 256, f: 512, e: 8 }
  const world = 8
  const config = ParallelConfig.make({ world, tp: 2, cp: 2, ep: 8, etp: 1 })
  const router = tensor([layer.h, layer.e])
  const wGate = tensor([layer.e, layer.h, layer.f])
  const wUp = tensor([layer.e, layer.h, layer.f])
  const wDown = tensor([layer.e, layer.f, layer.h])
  const xs = Array.from({ length: world }, () => tensor([layer.t, layer.h]))
  const moe: MoeLayer.MoeConfig = { numExperts: layer.e, router: { topk: 2, scoreFunction: "softmax" } }
  const step = (x: Tensor.Tensor, w: MoeLayer.MoeWeights, groups: Parameters<typeof MoeLayer.forward>[3], tape: Tape.Tape) =>
    Effect.gen(function* () {
      const { output } = yield* MoeLayer.forward(
        tape.parameter(x),
        { router: tape.parameter(w.router), experts: { wGate: tape.parameter(w.experts.wGate), wUp: tape.parameter(w.experts.wUp), wDown: tape.parameter(w.experts.wDown) } },
        moe,
        groups,
      )
      yield* tape.backwardEffect(Reduce.sumAll(output))
    })
  const parallel = (backend: "local" | "local-zero-copy") => () =>
    Job.runPromise({ world, backend }, (rank) =>
      step(
        xs[rank] as Tensor.Tensor,
        { router, experts: { wGate: rows(wGate, rank, rank + 1), wUp: rows(wUp, rank, rank + 1), wDown: rows(wDown, rank, rank + 1) } },
        { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) },
        Tape.make(),
      ),
    )
  const all = Tensor.fromArray(
    xs.flatMap((x) => Array.from(x.data)),
    [world * layer.t, layer.h],
  )
  const one = Group.make("one", [0])
  const single = () => Job.runPromise({ world: 1 }, () => step(all, { router, experts: { wGate, wUp, wDown } }, { ep: one, etp: one, etpEp: one }, Tape.make()))
  // Steady state, as a training loop runs: 3 untimed layers (the ep > 1 paths compile in their
  // first calls; with 1 untimed and 3 timed the 8-rank row read 1.52x, with these 1.04-1.13x).
  const steady = async (f: () => Promise<unknown>) => {
    for (let i = 0; i < 3; i++) await f()
    return wallSeconds(f, 10)
  }
  const singleSeconds = await steady(single)
  for (const backend of ["local", "local-zero-copy"] as const) {
    const parallelSeconds = await steady(parallel(backend))
    out.push(
      record(ctx, {
        case: `MoE layer fwd+bwd, 8 ranks (TP2xCP2xDP2 -> EP8) vs 1 rank (${backend})`,
        metric: "time ratio",
        value: parallelSeconds / singleSeconds,
        unit: "x",
        limit: 1,
        target: 1.5,
      }),
    )
    ctx.log(`moe: layer 8 ranks ${(parallelSeconds * 1e3).toFixed(0)} ms (${backend}), 1 rank ${(singleSeconds * 1e3).toFixed(0)} ms`)
  }
  return out
}
