/**
 * DeviceDistributed: the distributed optimizer (DistributedOptimizer's ZeRO-1: its buckets, the
 * parts each member owns, its order of collectives) where a rank computes on an accelerator, with
 * everything of a step in device memory: the shards' fp32 weights and gradient accumulators
 * (DeviceOptimizer's), each bucket's gradients laid end to end there and reduce-scattered, this
 * rank's parts of the moments and of the summed gradients, AdamW on its owned runs, and the
 * all-gather of the updated parts back into the shards. A step brings one float64 a run to the
 * host (its sum of squares); on the NCCL backend the collectives run on the device arrays. With
 * instances (hybrid sharding) each part is all-reduced across them after its reduce-scatter, and
 * the norm counts the first instance's parts, as on the host.
 *
 * The host's parts of the moments (the buckets' `moments`) and the shards' values are the
 * device's as of the last `settleHost` (before a checkpoint, at the end of the run), as
 * DeviceOptimizer's are. The all-gathers `step` issues are awaited at the next step's start (not
 * per chunk as on the host: the bf16 copies are rounded from complete weights). Same steps, bit
 * for bit, as DistributedOptimizer on `sim` (every piece is the same arithmetic on the same
 * elements in the same order).
 *
 * It runs where DeviceOptimizer does, and not with the test-only fault that leaves a parameter
 * out of its bucket (`appliesTo`).
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import { type DeviceArray, uploadedOrZeros } from "../tensor/device/DeviceRuntime.js"
import * as GradAccumulator from "../tensor/GradAccumulator.js"
import * as AdamwInto from "../tensor/kernels/AdamwInto.js"
import { arrayOnHost } from "../tensor/ops/Transfer.js"
import * as Tensor from "../tensor/Tensor.js"
import * as DeviceOptimizer from "./DeviceOptimizer.js"
import * as DistributedOptimizer from "./DistributedOptimizer.js"
import * as Optimizer from "./Optimizer.js"
import * as RankParams from "./RankParams.js"

type Bucket = DistributedOptimizer.Bucket

/** A bucket's part of this rank on the device: its moments and its summed gradient. */
interface Part {
  readonly m: DeviceArray
  readonly v: DeviceArray
  grad: DeviceArray
}

/**
 * A rank's distributed optimizer on its device.
 * @category models
 */
export interface DeviceDistributed {
  readonly host: DistributedOptimizer.DistributedOptimizer
  readonly shards: DeviceOptimizer.DeviceOptimizer
  /** Made at the first use (from the host's moments then). */
  parts: Map<Bucket, Part> | undefined
  readonly inFlight: Map<Bucket, Comm.Pending<Tensor.Tensor>>
  readonly gathering: Map<Bucket, Comm.Pending<{ readonly tensor: Tensor.Tensor }>>
  hostBehind: boolean
}

/**
 * Whether the distributed optimizer can run on the device: no parameter left out of its bucket.
 * @category guards
 */
export const appliesTo = (host: DistributedOptimizer.DistributedOptimizer): boolean => host.unbucketed.size === 0

/**
 * The device half of `host` over `shards` (nothing on the device yet).
 * @category constructors
 */
export const make = (host: DistributedOptimizer.DistributedOptimizer, shards: DeviceOptimizer.DeviceOptimizer): DeviceDistributed => ({
  host,
  shards,
  parts: undefined,
  inFlight: new Map(),
  gathering: new Map(),
  hostBehind: false,
})

const partsOf = (d: DeviceDistributed): Map<Bucket, Part> => {
  if (d.parts !== undefined) return d.parts
  const rt = d.shards.runtime
  d.parts = new Map(d.host.buckets.map((b) => [b, { m: uploadedOrZeros(rt, b.moments.m), v: uploadedOrZeros(rt, b.moments.v), grad: rt.allocate(d.host.dtype, b.count) }]))
  return d.parts
}

const partOf = (d: DeviceDistributed, bucket: Bucket): Part => partsOf(d).get(bucket) as Part

/** A device array as the column tensor the collectives take ([n, 1], as the host's buckets). */
const column = (d: DeviceDistributed, data: DeviceArray): Tensor.Tensor => new Tensor.Tensor({ shape: [data.length, 1], resident: data, device: d.shards.runtime.device })

/** A bucket's shards' gradients laid end to end on the device. */
const flatGrads = (d: DeviceDistributed, bucket: Bucket): DeviceArray => {
  const rt = d.shards.runtime
  const flat = rt.allocate(d.host.dtype, bucket.total)
  bucket.held.forEach((h, i) => {
    const g = DeviceOptimizer.gradOf(d.shards, h)
    GradAccumulator.settle(g)
    rt.kernels.copyRange(g, 0, flat, bucket.offsets[i] as number, g.length)
  })
  return flat
}

/**
 * DistributedOptimizer.startChunk on the device: chunk `chunk`'s buckets' reduce-scatters issued.
 * @category combinators
 */
export const startChunk = (d: DeviceDistributed, chunk: number) =>
  Effect.gen(function* () {
    for (const bucket of d.host.buckets) {
      if (bucket.chunk !== chunk || !DistributedOptimizer.startsEarly(bucket) || d.inFlight.has(bucket)) continue
      d.inFlight.set(bucket, yield* Comm.start.reduceScatterV(bucket.group, column(d, flatGrads(d, bucket)), bucket.counts))
    }
  })

/**
 * DistributedOptimizer.reduceScatter on the device: the tied embedding's sum first, then each
 * bucket's part of the sum (the ones startChunk issued awaited), in waves.
 * @category combinators
 */
export const reduceScatter = (d: DeviceDistributed) =>
  Effect.gen(function* () {
    const rt = d.shards.runtime
    const held = d.host.buckets.flatMap((b) => b.held)
    yield* RankParams.sumTied(held, d.host.groups, d.host.dtype, DeviceOptimizer.reduce(d.shards))
    for (const wave of DistributedOptimizer.waves(d.host)) {
      const pending: Array<{ readonly bucket: Bucket; readonly result: Comm.Pending<Tensor.Tensor> }> = []
      for (const bucket of wave) {
        const started = d.inFlight.get(bucket)
        if (started !== undefined) pending.push({ bucket, result: started })
        else if (bucket.group.ranks.length === 1) partOf(d, bucket).grad = flatGrads(d, bucket)
        else pending.push({ bucket, result: yield* Comm.start.reduceScatterV(bucket.group, column(d, flatGrads(d, bucket)), bucket.counts) })
      }
      for (const { bucket, result } of pending) partOf(d, bucket).grad = (yield* result.await).deviceArray(rt)
    }
    d.inFlight.clear()
    // Hybrid sharding: each part summed across the instances, all issued before any is awaited.
    const across: Array<{ readonly bucket: Bucket; readonly result: Comm.Pending<Tensor.Tensor> }> = []
    for (const bucket of d.host.buckets)
      if (bucket.inter !== undefined) across.push({ bucket, result: yield* Comm.start.allReduce(bucket.inter, column(d, partOf(d, bucket).grad)) })
    for (const { bucket, result } of across) partOf(d, bucket).grad = (yield* result.await).deviceArray(rt)
  })

/** A run of `n` elements of `src` from `at`, in a new device array. */
const runOf = (d: DeviceDistributed, src: DeviceArray, at: number, n: number): DeviceArray => {
  const rt = d.shards.runtime
  const out = rt.allocate(src.dtype, n)
  rt.kernels.copyRange(src, at, out, 0, n)
  return out
}

/**
 * DistributedOptimizer.globalNorm on the device: the squares of this rank's runs of the summed
 * gradients (one float64 each to the host, added in the host's order), over the world.
 * @category combinators
 */
export const globalNorm = (d: DeviceDistributed) =>
  Effect.gen(function* () {
    const rt = d.shards.runtime
    const runs = DistributedOptimizer.owned(d.host).filter((o) => o.held.tiedCopy !== true && DistributedOptimizer.inFirstInstance(o.bucket, d.host.rank))
    const sums = rt.zeros("float64", runs.length)
    runs.forEach((o, i) => rt.kernels.sumSquares(runOf(d, partOf(d, o.bucket).grad, o.at, o.to - o.from), sums, i))
    const host = yield* arrayOnHost(sums)
    let squares = 0
    for (const s of host) squares += s
    const total = yield* Comm.allReduce(d.host.groups.world, Tensor.fromArray([squares], [1, 1], { dtype: "float64" }))
    return Math.sqrt(total.data[0] as number)
  })

/**
 * DistributedOptimizer.step on the device: AdamW on each owned run (its weights, summed gradient
 * and moments; AdamwInto's arithmetic), then each bucket's updated part issued to be gathered.
 * @category combinators
 */
export const step = (c: Optimizer.OptimizerConfig, d: DeviceDistributed, t: number, lr: number, clip: number) =>
  Effect.gen(function* () {
    yield* settle(d)
    const rt = d.shards.runtime
    const runs = DistributedOptimizer.owned(d.host)
    for (const o of runs) {
      const n = o.to - o.from
      const part = partOf(d, o.bucket)
      const weights = DeviceOptimizer.weightsOf(d.shards, o.held)
      const [w, g, m, v] = [runOf(d, weights, o.from, n), runOf(d, part.grad, o.at, n), runOf(d, part.m, o.at, n), runOf(d, part.v, o.at, n)]
      rt.kernels.adamw(w, g, m, v, AdamwInto.scalarsOf(c, t, lr, clip, Optimizer.decayOf(c, o.held.spec)))
      rt.kernels.copyRange(w, 0, weights, o.from, n)
      rt.kernels.copyRange(m, 0, part.m, o.at, n)
      rt.kernels.copyRange(v, 0, part.v, o.at, n)
    }
    d.hostBehind = true
    d.shards.hostBehind = true
    for (const bucket of d.host.buckets) {
      if (bucket.group.ranks.length === 1) continue
      const updated = rt.allocate(d.host.dtype, bucket.count)
      for (const o of runs) if (o.bucket === bucket) rt.kernels.copyRange(DeviceOptimizer.weightsOf(d.shards, o.held), o.from, updated, o.at, o.to - o.from)
      d.gathering.set(bucket, yield* Comm.start.allGatherV(bucket.group, column(d, updated)))
    }
  })

/**
 * Completes the all-gathers `step` issued, writing the gathered values into the shards' weights
 * on the device, in issue order.
 * @category combinators
 */
export const settle = (d: DeviceDistributed) =>
  Effect.gen(function* () {
    const rt = d.shards.runtime
    for (const [bucket, pending] of [...d.gathering]) {
      const gathered = (yield* pending.await).tensor.deviceArray(rt)
      d.gathering.delete(bucket)
      bucket.held.forEach((h, i) => rt.kernels.copyRange(gathered, bucket.offsets[i] as number, DeviceOptimizer.weightsOf(d.shards, h), 0, h.value.size))
    }
  })

/**
 * DeviceOptimizer.gradientsToHost, and this rank's part of each bucket's summed gradient into the
 * host bucket's `grad` (for `pleat verify` only; unused by training on the device).
 * @category combinators
 */
export const gradientsToHost = (d: DeviceDistributed): void => {
  DeviceOptimizer.gradientsToHost(d.shards)
  for (const [bucket, part] of partsOf(d)) d.shards.runtime.download(part.grad, bucket.grad as Float32Array)
}

/**
 * DeviceOptimizer.weightsNow once the last step's all-gathers are in the weights.
 * @category constructors
 */
export const weightsNow = (d: DeviceDistributed) =>
  Effect.gen(function* () {
    yield* settle(d)
    return DeviceOptimizer.weightsNow(d.shards)
  })

/**
 * Brings the host's shards and its parts of the moments up to the device's (after `settle`).
 * @category combinators
 */
export const settleHost = (d: DeviceDistributed) =>
  Effect.gen(function* () {
    yield* settle(d)
    DeviceOptimizer.settle(d.shards)
    if (!d.hostBehind || d.parts === undefined) return
    for (const [bucket, part] of d.parts) {
      d.shards.runtime.download(part.m, bucket.moments.m)
      d.shards.runtime.download(part.v, bucket.moments.v)
    }
    d.hostBehind = false
  })
