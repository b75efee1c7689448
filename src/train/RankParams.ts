/**
 * RankParams: the parameter shards one rank holds, their gradient accumulators, and the
 * synchronisation of gradients across the ranks that share them.
 *
 * Gradient groups (no double counting, every shard reduced exactly where it is replicated):
 *   tp-sharded dense parameters          sum over dp-cp
 *   replicated dense parameters (norms,  sum over tp-dp-cp: dp-cp replicas, and under sequence
 *   router)                              parallelism each tp member saw other tokens
 *   expert parameters                    sum over edp
 *   the tied embedding (pp > 1)          first over the embedding group (the first and last
 *                                        stage of the pipeline group), then over dp-cp
 * Each group's gradients travel as one flat bucket: one collective for many parameters.
 *
 * Tied embeddings (Params): with pp > 1 the last stage holds a copy of the embedding, a replica
 * under the same name. Its gradient (the output layer's use) and the first stage's (the
 * lookup's) are summed over the embedding group before anything else, so both copies hold the
 * whole gradient and take identical steps: they stay bit-identical (collectives add in group
 * order on every backend). The copy is counted once in the global norm and saved once in a
 * checkpoint: by the first stage.
 *
 * Fault injection (for testing `pleat verify`): PLEAT_FAULT_SKIP_SYNC=NAME leaves parameter
 * NAME out of its bucket, so its gradient stays each rank's partial sum: the missing
 * synchronisation that verify must catch and name.
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import * as Group from "../comm/Group.js"
import type * as Folding from "../mapping/Folding.js"
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as DType from "../tensor/DType.js"
import * as GradAccumulator from "../tensor/GradAccumulator.js"
import * as StorageRecycler from "../tensor/StorageRecycler.js"
import { sumSquares, sumSquaresEach } from "../tensor/kernels/SumSquares.js"
import * as Tensor from "../tensor/Tensor.js"
import * as ParamInit from "./ParamInit.js"
import * as Params from "./Params.js"

/**
 * One held shard.
 * @category models
 */
export interface Held {
  readonly spec: Params.ParamSpec
  /** The shard's values (updated in place by the optimizer). */
  readonly value: Tensor.Tensor
  /** Accumulated gradient over the step's micro-batches. */
  readonly grad: DType.Storage
  /** Which global slice this shard is. */
  readonly slice: ReadonlyArray<[number, number]>
  /** The last stage's copy of the tied embedding (the first stage's is the original). */
  readonly tiedCopy?: boolean
}

/**
 * The groups gradients are reduced over.
 * @category models
 */
export interface SyncGroups {
  readonly dpCp: Group.Group
  readonly tpDpCp: Group.Group
  readonly edp: Group.Group
  /** The first and last rank of this rank's pipeline group (this rank alone when pp = 1). */
  readonly embedding: Group.Group
  readonly world: Group.Group
}

/**
 * The embedding group of a rank from its pipeline group, as Megatron's: the first and last
 * member, which hold the tied embedding; a rank of a middle stage (or with pp = 1) is alone in
 * its group, with nothing to sum.
 * @category constructors
 */
export const embeddingGroup = (pp: Group.Group, rank: number): Group.Group => {
  const first = pp.ranks[0] as number
  const last = pp.ranks[pp.ranks.length - 1] as number
  const shares = pp.ranks.length > 1 && (rank === first || rank === last)
  return shares ? Group.make(`embedding of ${pp.name}`, [first, last]) : Group.make(`embedding of rank ${rank}`, [rank])
}

/**
 * A rank's gradient groups under `parallel`.
 * @category constructors
 */
export const syncGroups = (parallel: ParallelConfig.ParallelConfig, rank: number): SyncGroups => {
  const group = (f: Parameters<typeof Group.ofFamily>[1]) => Group.ofFamily(parallel, f, rank)
  return { dpCp: group("dp-cp"), tpDpCp: group("tp-dp-cp"), edp: group("edp"), embedding: embeddingGroup(group("pp"), rank), world: Group.world(parallel.world) }
}

/**
 * Where a rank's shards start: drawn from the seed, or zeros that the caller fills before the
 * first step (a resume's checkpoint, Lockstep's parallel run), which spares drawing them: the
 * seed's normals take ~37 ns an element here, a minute and more for a rank of billions.
 * @category models
 */
export type Values = "seed" | "given"

/**
 * Materializes this rank's shards of the parameters of `layers` (and embedding / head where
 * its stages hold them) from the seed, or as zeros when their values are `given` later.
 * @category constructors
 */
export const make = (
  specs: ReadonlyArray<Params.ParamSpec>,
  holds: (spec: Params.ParamSpec) => boolean,
  place: Folding.RankPlace,
  sizes: ParallelConfig.Sizes,
  seed: number,
  dtype: DType.DType,
  values: Values = "seed",
): Map<string, Held> => {
  const out = new Map<string, Held>()
  for (const spec of specs) {
    if (!holds(spec)) continue
    const slice = Params.sliceOf(spec, place, sizes)
    const value =
      values === "seed"
        ? ParamInit.initialSlice(spec, seed, dtype, slice)
        : Tensor.zeros(
            slice.map(([a, b]) => b - a),
            { dtype },
          )
    const tiedCopy = spec.tied === true && place.pp !== 0
    out.set(spec.name, { spec, value, grad: DType.allocate(dtype, value.size), slice, ...(tiedCopy ? { tiedCopy } : {}) })
  }
  return out
}

/**
 * The gradient groups' kinds, in the fixed order their collectives are issued.
 * @category models
 */
export type Kind = "dense" | "replicated" | "expert"

/**
 * Every kind, in the order of the collectives.
 * @category configuration
 */
export const kinds: ReadonlyArray<Kind> = ["dense", "replicated", "expert"]

/**
 * Which gradient group a parameter belongs to (see the file header).
 * @category mapping
 */
export const kindOf = (spec: Params.ParamSpec): Kind => (Params.isExpert(spec) ? "expert" : spec.sharding === "replicated" ? "replicated" : "dense")

/**
 * The group a kind's gradients are summed over: exactly the ranks that hold each of its shards.
 * @category mapping
 */
export const groupOf = (groups: SyncGroups, kind: Kind): Group.Group => (kind === "expert" ? groups.edp : kind === "replicated" ? groups.tpDpCp : groups.dpCp)

/**
 * The parameter PLEAT_FAULT_SKIP_SYNC leaves out of its bucket (test-only; see the file header).
 * @category configuration
 */
export const skippedBySync = (): string | undefined => process.env.PLEAT_FAULT_SKIP_SYNC

/**
 * How the gradients of some shards are summed over a group and written back into their
 * accumulators (every member passes the same shards in the same order). The host's way is one
 * flat bucket a group; DeviceOptimizer's sums the accumulators in device memory.
 * @category models
 */
export type Reduce = (held: ReadonlyArray<Held>, group: Group.Group) => Effect.Effect<void, unknown, Comm.Communicator>

/** Gradients of one kind as one flat buffer, reduced over `group`, written back. */
const hostBuckets =
  (dtype: DType.DType): Reduce =>
  (held, group) =>
    Effect.gen(() => hostBucketSteps(dtype, held, group))

/** hostBuckets' steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* hostBucketSteps(dtype: DType.DType, held: ReadonlyArray<Held>, group: Group.Group) {
  if (held.length === 0 || group.ranks.length === 1) return
  const total = held.reduce((a, h) => a + h.grad.length, 0)
  // Every element is written below: no zeroing pass.
  const bucket = DType.allocateUninitialized(dtype, total)
  let offset = 0
  for (const h of held) {
    bucket.set(h.grad, offset)
    offset += h.grad.length
  }
  const comm = yield* Comm.Communicator
  const summed = yield* Comm.allReduce(group, Tensor.fromStorage(bucket, [1, total]))
  offset = 0
  for (const h of held) {
    h.grad.set(summed.data.subarray(offset, offset + h.grad.length))
    offset += h.grad.length
  }
  // Both buffers are dead here; where the transport kept neither (CommunicatorShape.privateStorage)
  // they go back to the recycler, so the next step's buckets reuse them instead of new memory
  // (a rank of the realistic shape on ep 2 made ~70 MB of them a step).
  if (comm.privateStorage === true) {
    StorageRecycler.recycle(bucket)
    if (summed.hostStorage !== undefined) StorageRecycler.recycle(summed.hostStorage)
  }
}

/**
 * Sums the tied embedding's gradient over the embedding group (see the file header): both
 * copies then hold the gradient of both its uses. Nothing to do with pp = 1, where one leaf
 * serves both uses and the tape adds them, or on a middle stage.
 * @category combinators
 */
export const sumTied = (held: Iterable<Held>, groups: SyncGroups, dtype: DType.DType, reduce: Reduce = hostBuckets(dtype)) =>
  reduce(
    [...held].filter((h) => h.spec.tied === true && h.spec.name !== skippedBySync()),
    groups.embedding,
  )

/**
 * Whether a shard's gradient counts in the global norm on this rank: the tied copy never does
 * (the first stage's embedding counts it), the others where this rank is the first member of
 * their reduction group.
 * @category guards
 */
export const countsInNorm = (h: Held, groups: SyncGroups, rank: number): boolean => h.tiedCopy !== true && groupOf(groups, kindOf(h.spec)).ranks[0] === rank

/**
 * Sums every gradient over the ranks that hold the same shard (see the file header). The
 * order of the buckets is fixed, so all ranks issue the same collectives.
 * @category combinators
 */
export const synchronize = (params: ReadonlyMap<string, Held>, groups: SyncGroups, dtype: DType.DType, reduce: Reduce = hostBuckets(dtype)) =>
  Effect.gen(function* () {
    const skipped = skippedBySync()
    const all = [...params.values()].filter((h) => h.spec.name !== skipped)
    yield* sumTied(all, groups, dtype, reduce)
    // Each kind over its group (groupOf, which changedBySync reads too), in the order of `kinds`.
    for (const kind of kinds) {
      yield* reduce(
        all.filter((h) => kindOf(h.spec) === kind),
        groupOf(groups, kind),
      )
    }
  })

/**
 * Whether any gradient group of a rank has members other than itself (otherwise `synchronize`
 * has nothing to do).
 * @category guards
 */
export const crossesRanks = (groups: SyncGroups): boolean => [groups.dpCp, groups.tpDpCp, groups.edp, groups.embedding].some((g) => g.ranks.length > 1)

/**
 * Whether `synchronize` can change `h`'s gradient: the group its kind is summed over, or the tied
 * embedding's, has members other than this rank (the test-only skipped parameter stays as it is).
 * @category guards
 */
export const changedBySync = (h: Held, groups: SyncGroups): boolean =>
  h.spec.name !== skippedBySync() && (groupOf(groups, kindOf(h.spec)).ranks.length > 1 || (h.spec.tied === true && groups.embedding.ranks.length > 1))

/**
 * Each shard's sum of squares after `synchronize`, for globalNorm: the one `kept` from before it
 * (NonFinite.keepingSquares) where the sync cannot have changed the gradient, a fresh pass
 * otherwise. Under tp 2 without dp, say, only the norms' and routers' gradients (summed over tp)
 * take the second pass; the same bits as a pass over every gradient. The fresh passes of the
 * shards this rank counts in the norm (countsInNorm) run together, one shard a task of the
 * kernels' pool (sumSquaresEach, each sum in its own order), when this is called.
 * @category combinators
 */
export const squaresAfterSync = (params: ReadonlyMap<string, Held>, groups: SyncGroups, rank: number, kept: ReadonlyMap<Held, number>): ((h: Held) => number) => {
  const stale = (h: Held): boolean => changedBySync(h, groups) || !kept.has(h)
  const fresh = [...params.values()].filter((h) => countsInNorm(h, groups, rank) && stale(h))
  const sums = sumSquaresEach(fresh.map((h) => h.grad))
  const after = new Map(fresh.map((h, i) => [h, sums[i] as number]))
  return (h) => after.get(h) ?? (stale(h) ? sumSquares(h.grad) : (kept.get(h) as number))
}

/**
 * The global gradient norm over every parameter of the model, each shard counted once: a rank
 * adds a shard's squares only when it is the first member of that shard's reduction group (and
 * never the tied copy's). `squaresOf` gives a shard's sum of squares (SumSquares of its host
 * gradient; DeviceOptimizer's, computed on the device).
 * @category combinators
 */
export const globalNorm = (params: ReadonlyMap<string, Held>, groups: SyncGroups, rank: number, squaresOf: (h: Held) => number = (h) => sumSquares(h.grad)) =>
  Effect.gen(function* () {
    let squares = 0
    for (const h of params.values()) {
      if (!countsInNorm(h, groups, rank)) continue
      squares += squaresOf(h)
    }
    const total = yield* Comm.allReduce(groups.world, Tensor.fromArray([squares], [1, 1], { dtype: "float64" }))
    return Math.sqrt(total.data[0] as number)
  })

/**
 * Zeroes every gradient accumulator, lazily (GradAccumulator.clear): the step's first gradient
 * overwrites each one, and `settleGrads` writes the zeros of those no gradient reached.
 * @category combinators
 */
export const zeroGrads = (params: ReadonlyMap<string, Held>): void => {
  for (const h of params.values()) GradAccumulator.clear(h.grad)
}

/**
 * Makes the gradient accumulators of `held` readable after the backward passes: one that no
 * gradient reached since `zeroGrads` gets its zeros written. Every reader of the gradients
 * (reductions, norms, the optimizer, fault injection) runs after it.
 * @category combinators
 */
export const settleGrads = (held: Iterable<Held>): void => {
  for (const h of held) GradAccumulator.settle(h.grad)
}
