/**
 * DeviceOptimizer: the optimizer where a rank computes, on its accelerator: each shard's fp32
 * weights, gradient accumulator and AdamW moments live in device memory across steps, the
 * gradient norm's sums of squares and the update run there (DeviceKernels.sumSquares and adamw:
 * AdamwInto's arithmetic), and a step moves nothing between host and device but one float64 a
 * shard (its sum of squares, for the norm and the check for non-finite gradients). Without it
 * (ZeRO-Offload's way, ChunkRun) each shard is uploaded every step and its gradient downloaded.
 *
 * The host's shards (`Held.value`) and moments are the device's as of the last `settle`: the
 * trainer settles before anything reads them (a checkpoint, a report of the weights, the end of
 * the run). The device copies are made at the first step from the host's, so a checkpoint loaded
 * before it is where training starts.
 *
 * Gradients shared with other ranks are summed where they lie (`reduce`, RankParams.synchronize's
 * order: one collective a shard on its device tensor): on the NCCL backend the collective runs on
 * the device arrays and nothing crosses to the host; the other backends sum host copies and the
 * result is copied back (correct, and counted as transfers). Each rank's sums of squares are
 * taken before the sync (the check for non-finite gradients, on the rank that has them, as the
 * host does) and, where the sync changed the gradients, again after it (the norm).
 *
 * With bf16 the chunks compute on bf16 copies of the weights, rounded on the device at each
 * step's start (DeviceKernels.roundBf16); master weights, gradients and moments stay fp32.
 *
 * It runs with float32 master weights and the replicated optimizer, without fault injection;
 * `appliesTo` says which. Same steps, bit for bit, as the host's optimizer on `sim`; on CUDA the sum of squares adds in its block order
 * (sum_squares_element.h) and NCCL's sums in its own.
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import { type DeviceArray, type DeviceRuntime, uploadedOrZeros } from "../tensor/device/DeviceRuntime.js"
import * as GradAccumulator from "../tensor/GradAccumulator.js"
import * as AdamwInto from "../tensor/kernels/AdamwInto.js"
import { arrayOnHost } from "../tensor/ops/Transfer.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Optimizer from "./Optimizer.js"
import type * as RankParams from "./RankParams.js"

/** One shard on the device. */
interface Shard {
  readonly weights: DeviceArray
  readonly grad: DeviceArray
  /** The moments (the replicated optimizer's; the distributed one keeps its parts' in DeviceDistributed). */
  readonly m: DeviceArray | undefined
  readonly v: DeviceArray | undefined
  /** bf16: the step's copy of the weights rounded to bf16 values (what the micro-batches compute on). */
  readonly low: DeviceArray | undefined
}

/**
 * The device state of a rank's optimizer.
 * @category models
 */
export interface DeviceOptimizer {
  readonly runtime: DeviceRuntime
  /** bf16: the chunks compute on bf16 copies of the fp32 weights, made on the device each step. */
  readonly precision: "fp32" | "bf16"

  readonly params: ReadonlyMap<string, RankParams.Held>
  readonly moments: ReadonlyMap<string, Optimizer.Moments>
  /** Made at the first step (from the host's values then). */
  shards: Map<RankParams.Held, Shard> | undefined
  /** Whether a step ran on the device since the host's copies were last brought up to date. */
  hostBehind: boolean
}

/**
 * Whether a rank that computes on an accelerator with the replicated optimizer can keep it on
 * its device (see the file header).
 * @category guards
 */
export const appliesTo = (r: { readonly dtype: string; readonly faults: boolean }): boolean =>
  r.dtype === "float32" &&
  // Fault injection (tests of `pleat verify`) rewrites the host's gradients.
  !r.faults

/**
 * A rank's device optimizer over its shards and moments (nothing on the device yet).
 * @category constructors
 */
export const make = (
  runtime: DeviceRuntime,
  params: ReadonlyMap<string, RankParams.Held>,
  moments: ReadonlyMap<string, Optimizer.Moments>,
  precision: "fp32" | "bf16" = "fp32",
): DeviceOptimizer => ({
  runtime,
  precision,
  params,
  moments,
  shards: undefined,
  hostBehind: false,
})

const shardsOf = (o: DeviceOptimizer): Map<RankParams.Held, Shard> => {
  if (o.shards !== undefined) return o.shards
  const shards = new Map<RankParams.Held, Shard>()
  for (const [name, held] of o.params) {
    const s = o.moments.get(name)
    shards.set(held, {
      weights: o.runtime.upload(held.value.readHost()),
      grad: o.runtime.allocate(held.value.dtype, held.value.size),
      m: s === undefined ? undefined : uploadedOrZeros(o.runtime, s.m),
      v: s === undefined ? undefined : uploadedOrZeros(o.runtime, s.v),
      low: o.precision === "bf16" ? o.runtime.allocate("float32", held.value.size) : undefined,
    })
  }
  o.shards = shards
  return shards
}

const shardOf = (o: DeviceOptimizer, held: RankParams.Held): Shard => shardsOf(o).get(held) as Shard

/**
 * Starts a step: every gradient accumulator cleared (lazily, GradAccumulator.clear), and the
 * step's device tensor of each shard put in `copies`, where the chunks take their weights from
 * (ChunkRun's device copies): its weights (no copy), or with bf16 their rounding to bf16 values.
 * @category combinators
 */
export const startStep = (o: DeviceOptimizer, copies: Map<RankParams.Held, Tensor.Tensor>): void => {
  for (const [held, shard] of shardsOf(o)) {
    GradAccumulator.clear(shard.grad)
    if (shard.low !== undefined) o.runtime.kernels.roundBf16(shard.weights, shard.low)
    copies.set(held, new Tensor.Tensor({ shape: held.value.shape, resident: shard.low ?? shard.weights, device: o.runtime.device }))
  }
}

/**
 * Each shard's device tensor as it stands, for a forward outside the steps (an evaluation):
 * `startStep`'s copies (its bf16 rounding made afresh).
 * @category constructors
 */
export const weightsNow = (o: DeviceOptimizer): Map<RankParams.Held, Tensor.Tensor> => {
  const copies = new Map<RankParams.Held, Tensor.Tensor>()
  startStep(o, copies)
  return copies
}

/**
 * A shard's fp32 weights on the device.
 * @category getters
 */
export const weightsOf = (o: DeviceOptimizer, held: RankParams.Held): DeviceArray => shardOf(o, held).weights

/**
 * A shard's gradient accumulator on the device (ChunkRun binds the step's leaves to it).
 * @category getters
 */
export const gradOf = (o: DeviceOptimizer, held: RankParams.Held): DeviceArray => shardOf(o, held).grad

/**
 * RankParams.Reduce on the device accumulators, as the host's: the shards' gradients laid end to
 * end in one device bucket (DeviceKernels.copyRange), summed over `group` by one collective on
 * its device tensor, each slice copied back into its accumulator (device to device where the
 * backend left the sum resident). Accumulators no gradient reached hold zeros first.
 * @category combinators
 */
export const reduce =
  (o: DeviceOptimizer): RankParams.Reduce =>
  (held, group) =>
    Effect.gen(function* () {
      if (held.length === 0 || group.ranks.length === 1) return
      const k = o.runtime.kernels
      const grads = held.map((h) => shardOf(o, h).grad)
      const total = grads.reduce((n, g) => n + g.length, 0)
      const bucket = o.runtime.allocate(grads[0]?.dtype ?? "float32", total)
      let offset = 0
      for (const g of grads) {
        GradAccumulator.settle(g)
        k.copyRange(g, 0, bucket, offset, g.length)
        offset += g.length
      }
      const summed = yield* Comm.allReduce(group, new Tensor.Tensor({ shape: [1, total], resident: bucket, device: o.runtime.device }))
      const sums = summed.deviceArray(o.runtime)
      offset = 0
      for (const g of grads) {
        k.copyRange(sums, offset, g, 0, g.length)
        offset += g.length
      }
    })

/**
 * Each shard's sum of squares of its gradient, in the order of `params` (one download of one
 * float64 a shard). Accumulators no gradient reached hold zeros first.
 * @category combinators
 */
export const squares = (o: DeviceOptimizer): Effect.Effect<Map<RankParams.Held, number>> => {
  const shards = [...shardsOf(o)]
  const sums = o.runtime.zeros("float64", shards.length)
  shards.forEach(([, shard], i) => {
    GradAccumulator.settle(shard.grad)
    o.runtime.kernels.sumSquares(shard.grad, sums, i)
  })
  return Effect.map(arrayOnHost(sums), (host) => new Map(shards.map(([held], i) => [held, host[i] as number])))
}

/**
 * A shard's gradient on the host (a download: for naming the first non-finite element only).
 * @category getters
 */
export const gradientOnHost = (o: DeviceOptimizer, held: RankParams.Held): Float32Array => {
  const host = new Float32Array(held.value.size)
  o.runtime.download(shardOf(o, held).grad, host)
  return host
}

/**
 * Copies each shard's gradient (the step's synchronised sum, until the next step starts) into
 * the host's `Held.grad`, which training does not read on the device: for `pleat verify`'s
 * comparison of gradients only.
 * @category combinators
 */
export const gradientsToHost = (o: DeviceOptimizer): void => {
  for (const [held, shard] of shardsOf(o)) o.runtime.download(shard.grad, held.grad as Float32Array)
}

/**
 * One AdamW step of every shard on the device (step t from 1, the gradient scaled by `clip`):
 * the update Optimizer.step makes on the host, AdamwInto's arithmetic.
 * @category combinators
 */
export const step = (o: DeviceOptimizer, c: Optimizer.OptimizerConfig, t: number, lr: number, clip: number): void => {
  for (const [held, shard] of shardsOf(o)) {
    if (shard.m === undefined || shard.v === undefined)
      throw new Error(`DeviceOptimizer.step: ${held.spec.name} has no moments here (the distributed optimizer's are DeviceDistributed's)`)
    o.runtime.kernels.adamw(shard.weights, shard.grad, shard.m, shard.v, AdamwInto.scalarsOf(c, t, lr, clip, Optimizer.decayOf(c, held.spec)))
  }
  o.hostBehind = true
}

/**
 * Brings the host's shards and moments up to the device's (downloads only after a step).
 * @category combinators
 */
export const settle = (o: DeviceOptimizer): void => {
  if (!o.hostBehind || o.shards === undefined) return
  for (const [name, held] of o.params) {
    const shard = o.shards.get(held) as Shard
    const s = o.moments.get(name)
    o.runtime.download(shard.weights, held.value.data)
    if (s !== undefined && shard.m !== undefined && shard.v !== undefined) {
      o.runtime.download(shard.m, s.m)
      o.runtime.download(shard.v, s.v)
    }
  }
  o.hostBehind = false
}
