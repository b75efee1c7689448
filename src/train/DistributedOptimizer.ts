/**
 * DistributedOptimizer: AdamW with its state sharded over the ranks that hold the same
 * parameters (ZeRO-1, as Megatron's --use-distributed-optimizer), instead of every replica
 * keeping the whole state and updating the whole shard.
 *
 * Each gradient group of RankParams (dense over dp-cp, replicated over tp-dp-cp, expert over
 * edp) is the set of ranks that hold exactly the same shards, laid out in the same order. So
 * each group's shards form one flat bucket, the same on every member, and member i owns the
 * i-th contiguous part of it (sizes differ by at most one element); a kind with more than
 * `bucketElements` elements is laid out as several buckets, each split so. A step:
 *   1. reduce-scatters each bucket's gradients: a member receives the sum of its parts only;
 *   2. the global norm adds the squares of each member's part (every element of the model once:
 *      the tied copy's parts are left out) over the world;
 *   3. each member runs AdamW on its part, with moments only for its part;
 *   4. all-gathers each bucket's updated values back into every member's shards.
 * The reduce-scatters left for the end travel in waves, the i-th bucket of each kind together:
 * a wave's collectives are all issued before any is awaited (Communicator `start`), so the
 * kinds' groups' streams overlap one another. The all-gathers are all in flight at once (their
 * flat buffers together hold one copy of the rank's shards).
 * Buckets never mix model chunks (with vpp, a rank runs several): once a chunk's last backward
 * of the step has run, its gradients are final and `startChunk` issues its buckets'
 * reduce-scatters at once, so they travel while the rank runs the rest of its schedule (the
 * backwards of its other chunks, the pipeline's drain); `reduceScatter` then awaits them and
 * issues the rest. A bucket holding a tied embedding waits for the end (its gradient is summed
 * over the embedding group first, which must not block a stage mid-schedule). The all-gathers
 * of the updated values are issued at the end of `step` and awaited by `settle`: the trainer
 * settles a chunk's buckets just before its first forward of the next step, so the gathers of
 * the other chunks travel while it runs (and settles all before anything else reads the
 * values: a snapshot, the end of the run; a save writes only owned parts, which are current).
 *
 * With `instances` N > 1 (Megatron's --num-distributed-optimizer-instances, hybrid sharding), each
 * kind's group is split into N instances of consecutive members (semantics.md 1.4: contiguous
 * slices of the dp-cp and edp groups); the state is sharded within an instance and replicated
 * across them: a bucket reduce-scatters within its instance, then all-reduces its part across the
 * instances (the members at the same place in each), every instance steps its parts alike, and
 * the values are all-gathered within the instance. The norm counts the first instance's parts.
 *
 * The master weights are the parameters themselves (float32 or float64): the updated part is
 * written in place and gathered. A parameter left out of its bucket by the test-only fault
 * PLEAT_FAULT_SKIP_SYNC (RankParams) keeps whole moments of its own and is updated on each
 * rank from its unsynchronised gradient, as the replicated optimizer would: the missing
 * synchronisation `pleat verify` must catch.
 */
import * as Effect from "effect/Effect"
import * as ConfigError from "../errors/ConfigError.js"
import * as Comm from "../comm/Communicator.js"
import * as GroupModule from "../comm/Group.js"
import * as InstanceSlices from "../mapping/InstanceSlices.js"
import type { Group } from "../comm/Group.js"
import * as DType from "../tensor/DType.js"
import { sumSquares } from "../tensor/kernels/SumSquares.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Optimizer from "./Optimizer.js"
import * as RankParams from "./RankParams.js"

/**
 * One kind's shards laid end to end, and the part of them this rank owns.
 * @category models
 */
export interface Bucket {
  readonly kind: RankParams.Kind
  /** The model chunk of this rank whose parameters the bucket holds. */
  readonly chunk: number
  readonly group: Group
  readonly held: ReadonlyArray<RankParams.Held>
  /** Where each of `held` starts in the bucket. */
  readonly offsets: ReadonlyArray<number>
  readonly total: number
  /** Elements each member owns, in group-local order. */
  readonly counts: ReadonlyArray<number>
  /** This rank's part: [start, start + count). */
  readonly start: number
  readonly count: number
  /** The moments of this rank's part. */
  readonly moments: Optimizer.Moments
  /** The synchronised gradient of this rank's part (after `reduceScatter`). */
  readonly grad: DType.Storage
  /** With instances: the members at this rank's place in every instance, whose parts are summed. */
  readonly inter?: Group | undefined
}

/**
 * A rank's distributed optimizer state.
 * @category models
 */
export interface DistributedOptimizer {
  readonly buckets: ReadonlyArray<Bucket>
  /** Whole moments of the parameters left out of the buckets (only the test-only fault). */
  readonly unbucketed: Map<string, Optimizer.Moments>
  readonly groups: RankParams.SyncGroups
  readonly rank: number
  readonly dtype: DType.DType
  /** Reduce-scatters issued by `startChunk` this step, awaited by `reduceScatter`. */
  readonly inFlight: Map<Bucket, Comm.Pending<Tensor.Tensor>>
  /** All-gathers of updated values issued by `step`, awaited by `settle`. */
  readonly gathering: Map<Bucket, Comm.Pending<{ readonly tensor: Tensor.Tensor }>>
}

/** Member i's first element when `total` elements split over `n` members. */
const boundary = (total: number, n: number, i: number): number => Math.floor((total * i) / n)

/**
 * The elements a bucket gathers before it closes (about 64 MiB of float32 gradients): bounds
 * the flat buffer a collective takes, as Megatron's buckets do.
 * @category configuration
 */
export const defaultBucketElements = 1 << 24

/**
 * The instance of `whole` that holds `rank` (its consecutive members) and the group across the
 * instances at `rank`'s place in its instance; `instances` divides the group's size.
 * @category mapping
 */
const instanceGroups = (whole: Group, instances: number, rank: number): { readonly intra: Group; readonly inter: Group | undefined } => {
  if (instances === 1) return { intra: whole, inter: undefined }
  const n = whole.ranks.length
  if (n % instances !== 0) throw new Error(`DistributedOptimizer: ${instances} instances do not divide ${GroupModule.format(whole)}`)
  const at = whole.ranks.indexOf(rank)
  const { intra, inter } = InstanceSlices.of(whole.ranks, instances, at)
  const size = n / instances
  return { intra: GroupModule.make(`${whole.name}/instance${Math.floor(at / size)}`, intra), inter: GroupModule.make(`${whole.name}/across${at % size}`, inter) }
}

/** One bucket of a kind's shards, and this rank's part of it. */
const bucketOf = (kind: RankParams.Kind, chunk: number, group: Group, held: ReadonlyArray<RankParams.Held>, rank: number, dtype: DType.DType, inter: Group | undefined): Bucket => {
  const offsets: Array<number> = []
  let total = 0
  for (const h of held) {
    offsets.push(total)
    total += h.value.size
  }
  const n = group.ranks.length
  const me = group.ranks.indexOf(rank)
  const counts = group.ranks.map((_, i) => boundary(total, n, i + 1) - boundary(total, n, i))
  const start = boundary(total, n, me)
  const count = counts[me] as number
  const moments = { m: new Float32Array(count), v: new Float32Array(count) }
  return { kind, chunk, group, held, offsets, total, counts, start, count, moments, grad: DType.allocate(dtype, count), inter }
}

/**
 * Lays out the buckets of a rank's shards and allocates the moments of its parts: each kind's
 * shards of each chunk (`chunkOf`; one chunk by default) in order, a bucket closing once it
 * holds `bucketElements` (a shard is never split between buckets, so a larger one has a bucket
 * of its own).
 * @category constructors
 */
export const make = (
  params: ReadonlyMap<string, RankParams.Held>,
  groups: RankParams.SyncGroups,
  rank: number,
  dtype: DType.DType,
  bucketElements: number = defaultBucketElements,
  chunkOf: (spec: RankParams.Held["spec"]) => number = () => 0,
  instances = 1,
): DistributedOptimizer => {
  const skipped = RankParams.skippedBySync()
  const chunks = [...new Set([...params.values()].map((h) => chunkOf(h.spec)))].sort((a, b) => a - b)
  const buckets = RankParams.kinds.flatMap((kind) => {
    const { intra, inter } = instanceGroups(RankParams.groupOf(groups, kind), instances, rank)
    return chunks.flatMap((chunk) => {
      const runs: Array<Array<RankParams.Held>> = [[]]
      let size = 0
      for (const h of params.values()) {
        if (RankParams.kindOf(h.spec) !== kind || chunkOf(h.spec) !== chunk || h.spec.name === skipped) continue
        if (size >= bucketElements) {
          runs.push([])
          size = 0
        }
        ;(runs.at(-1) as Array<RankParams.Held>).push(h)
        size += h.value.size
      }
      return runs.filter((run) => run.length > 0).map((run) => bucketOf(kind, chunk, intra, run, rank, dtype, inter))
    })
  })
  const unbucketed = new Map([...params].filter(([name]) => name === skipped).map(([name, h]) => [name, { m: new Float32Array(h.value.size), v: new Float32Array(h.value.size) }]))
  return { buckets, unbucketed, groups, rank, dtype, inFlight: new Map(), gathering: new Map() }
}

/**
 * What this rank owns of one held shard: the run [from, to) of the shard's elements and where
 * it starts in the rank's part of the bucket.
 * @category models
 */
export interface Owned {
  readonly bucket: Bucket
  readonly held: RankParams.Held
  readonly from: number
  readonly to: number
  /** Index of element `from` in the part (its moments and synchronised gradient). */
  readonly at: number
}

/**
 * Every run of a shard this rank owns, bucket by bucket, in bucket order.
 * @category mapping
 */
export const owned = (opt: DistributedOptimizer): Array<Owned> =>
  opt.buckets.flatMap((bucket) =>
    bucket.held.flatMap((held, i) => {
      const offset = bucket.offsets[i] as number
      const lo = Math.max(offset, bucket.start)
      const hi = Math.min(offset + held.value.size, bucket.start + bucket.count)
      return lo < hi ? [{ bucket, held, from: lo - offset, to: hi - offset, at: lo - bucket.start }] : []
    }),
  )

/** A bucket's shards' gradients laid end to end. */
const flatGrads = (bucket: Bucket, dtype: DType.DType): DType.Storage => {
  const flat = DType.allocate(dtype, bucket.total)
  RankParams.settleGrads(bucket.held)
  bucket.held.forEach((h, i) => flat.set(h.grad, bucket.offsets[i] as number))
  return flat
}

const column = (data: DType.Storage): Tensor.Tensor => Tensor.fromStorage(data, [data.length, 1])

/**
 * Whether this rank's part of `bucket` is its first instance's (every part without instances):
 * the part the norm counts and a checkpoint saves.
 * @category guards
 */
export const inFirstInstance = (bucket: Bucket, rank: number): boolean => bucket.inter === undefined || bucket.inter.ranks[0] === rank

/**
 * The buckets in waves: wave i holds the i-th bucket of each kind.
 * @category mapping
 */
export const waves = (opt: DistributedOptimizer): Array<Array<Bucket>> => {
  const out: Array<Array<Bucket>> = []
  for (const kind of RankParams.kinds) {
    opt.buckets
      .filter((b) => b.kind === kind)
      .forEach((b, i) => {
        out[i] = [...(out[i] ?? []), b]
      })
  }
  return out
}

/**
 * Whether a bucket's reduce-scatter can start as soon as its chunk is done (see the header).
 * @category guards
 */
export const startsEarly = (bucket: Bucket): boolean => bucket.group.ranks.length > 1 && !bucket.held.some((h) => h.spec.tied === true)

/**
 * Issues the reduce-scatters of chunk `chunk`'s buckets (its gradients are final for the step)
 * without waiting for them; `reduceScatter` collects them.
 * @category combinators
 */
export const startChunk = (opt: DistributedOptimizer, chunk: number) =>
  Effect.gen(function* () {
    for (const bucket of opt.buckets) {
      if (bucket.chunk !== chunk || !startsEarly(bucket) || opt.inFlight.has(bucket)) continue
      opt.inFlight.set(bucket, yield* Comm.start.reduceScatterV(bucket.group, column(flatGrads(bucket, opt.dtype)), bucket.counts))
    }
  })

/**
 * Reduce-scatters every bucket's gradients: each rank's `grad` of a bucket becomes the sum over
 * the group of its part. Buckets `startChunk` issued are awaited; the others' collectives are
 * issued in waves and overlap one another (one stream per group).
 * @category combinators
 */
export const reduceScatter = (opt: DistributedOptimizer) =>
  Effect.gen(function* () {
    yield* RankParams.sumTied(
      opt.buckets.flatMap((b) => b.held),
      opt.groups,
      opt.dtype,
    )
    for (const wave of waves(opt)) {
      const pending = []
      for (const bucket of wave) {
        const started = opt.inFlight.get(bucket)
        if (started !== undefined) {
          pending.push({ bucket, result: started })
          continue
        }
        const flat = flatGrads(bucket, opt.dtype)
        if (bucket.group.ranks.length === 1) {
          bucket.grad.set(flat)
          continue
        }
        pending.push({ bucket, result: yield* Comm.start.reduceScatterV(bucket.group, column(flat), bucket.counts) })
      }
      for (const { bucket, result } of pending) bucket.grad.set((yield* result.await).data)
    }
    opt.inFlight.clear()
    // Hybrid sharding: each part summed across the instances, all issued before any is awaited.
    const across = []
    for (const bucket of opt.buckets) if (bucket.inter !== undefined) across.push({ bucket, result: yield* Comm.start.allReduce(bucket.inter, column(bucket.grad)) })
    for (const { bucket, result } of across) bucket.grad.set((yield* result.await).data)
  })

/**
 * The global gradient norm after `reduceScatter`: every rank adds the squares of its parts of
 * the buckets (the parts cover each parameter of the model once, the tied copy's left out) and,
 * for a parameter left out of its bucket, of its shard when it is its group's first member (as
 * RankParams.globalNorm).
 * @category combinators
 */
export const globalNorm = (opt: DistributedOptimizer, params: ReadonlyMap<string, RankParams.Held>) =>
  Effect.gen(function* () {
    let squares = 0
    for (const o of owned(opt)) {
      if (o.held.tiedCopy === true || !inFirstInstance(o.bucket, opt.rank)) continue
      squares += sumSquares(o.bucket.grad.subarray(o.at, o.at + o.to - o.from))
    }
    for (const name of opt.unbucketed.keys()) {
      const h = params.get(name) as RankParams.Held
      if (!RankParams.countsInNorm(h, opt.groups, opt.rank)) continue
      squares += sumSquares(h.grad)
    }
    const total = yield* Comm.allReduce(opt.groups.world, Tensor.fromArray([squares], [1, 1], { dtype: "float64" }))
    return Math.sqrt(total.data[0] as number)
  })

/**
 * One AdamW step on this rank's parts (step t counts from 1, gradients scaled by `clipScale`),
 * then every bucket's updated part issued to be all-gathered into every member's shards
 * (`settle` completes them; a step settles what an earlier one left first).
 * @category combinators
 */
export const step = (c: Optimizer.OptimizerConfig, opt: DistributedOptimizer, params: ReadonlyMap<string, RankParams.Held>, t: number, lr: number, clipScale: number) =>
  Effect.gen(function* () {
    yield* settle(opt)
    const runs = owned(opt)
    for (const o of runs) {
      Optimizer.updateRange(c, t, lr, clipScale, Optimizer.decayOf(c, o.held.spec), o.to - o.from, o.held.value.data, o.from, o.bucket.grad, o.at, o.bucket.moments, o.at)
    }
    const local = new Map([...opt.unbucketed.keys()].map((name) => [name, params.get(name) as RankParams.Held]))
    Optimizer.step(c, local, opt.unbucketed, t, lr, clipScale)
    for (const bucket of opt.buckets) {
      if (bucket.group.ranks.length === 1) continue
      const part = DType.allocate(opt.dtype, bucket.count)
      for (const o of runs) if (o.bucket === bucket) part.set(o.held.value.data.subarray(o.from, o.to), o.at)
      opt.gathering.set(bucket, yield* Comm.start.allGatherV(bucket.group, column(part)))
    }
  })

/**
 * Completes the all-gathers `step` issued for chunk `chunk`'s buckets (every chunk's when not
 * given), writing the gathered values into the shards, in issue order.
 * @category combinators
 */
export const settle = (opt: DistributedOptimizer, chunk?: number) =>
  Effect.gen(function* () {
    for (const [bucket, pending] of [...opt.gathering]) {
      if (chunk !== undefined && bucket.chunk !== chunk) continue
      const { tensor } = yield* pending.await
      opt.gathering.delete(bucket)
      bucket.held.forEach((h, i) => {
        const offset = bucket.offsets[i] as number
        h.value.data.set(tensor.data.subarray(offset, offset + h.value.size))
      })
    }
  })

/**
 * Bytes of optimizer state this rank keeps (moments, float32), by gradient kind.
 * @category mapping
 */
export const stateBytes = (opt: DistributedOptimizer, params: ReadonlyMap<string, RankParams.Held>): Record<RankParams.Kind, number> => {
  const out: Record<RankParams.Kind, number> = { dense: 0, replicated: 0, expert: 0 }
  for (const b of opt.buckets) out[b.kind] += b.moments.m.byteLength + b.moments.v.byteLength
  for (const [name, s] of opt.unbucketed) out[RankParams.kindOf((params.get(name) as RankParams.Held).spec)] += s.m.byteLength + s.v.byteLength
  return out
}

/**
 * Why a setup's hybrid sharding cannot work (a ConfigError naming the flag), or undefined: the
 * instances need the distributed optimizer, and must divide dp x cp and edp.
 * @category guards
 */
export const instancesProblem = (setup: {
  readonly distributedOptimizer?: boolean | undefined
  readonly distributedOptimizerInstances?: number | undefined
  readonly parallel: { readonly sizes: { readonly dp: number; readonly cp: number; readonly edp: number } }
}): ConfigError.ConfigError | undefined => {
  const n = setup.distributedOptimizerInstances ?? 1
  const field = "distributed-optimizer-instances"
  if (!Number.isSafeInteger(n) || n < 1) return ConfigError.make(field, n, "is not a positive integer", "give the instances as 1, 2, ...")
  if (n === 1) return undefined
  if (setup.distributedOptimizer !== true) return ConfigError.make(field, n, "splits the distributed optimizer's state, which is off", "add --distributed-optimizer, or drop it")
  const { dp, cp, edp } = setup.parallel.sizes
  if (InstanceSlices.divide(setup.parallel.sizes, n)) return undefined
  if ((dp * cp) % n !== 0) return ConfigError.make(field, n, `does not divide dp x cp = ${dp * cp} (the dense parameters' data-parallel ranks)`, `use a divisor of ${dp * cp}`)
  return ConfigError.make(field, n, `does not divide edp = ${edp} (the experts' data-parallel ranks)`, `use a divisor of ${edp}`)
}
