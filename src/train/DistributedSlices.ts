/**
 * DistributedSlices: what the distributed optimizer owns, as rectangular slices of the global
 * parameters (DistributedOptimizerPieces): what a checkpoint saves and loads of its state and
 * what `pleat verify` compares, rank by rank.
 */
import type * as DType from "../tensor/DType.js"
import type { DistributedOptimizer } from "./DistributedOptimizer.js"
import { inFirstInstance, owned } from "./DistributedOptimizer.js"
import * as Pieces from "./DistributedOptimizerPieces.js"
import type * as Optimizer from "./Optimizer.js"
import type * as RankParams from "./RankParams.js"

/**
 * One run this rank owns as a rectangular slice of its parameter (DistributedOptimizerPieces),
 * with its values, synchronised gradient and moments (views, not copies).
 * @category models
 */
export interface OwnedSlice {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly slice: ReadonlyArray<[number, number]>
  readonly value: DType.Storage
  readonly grad: DType.Storage
  readonly m: Float32Array
  readonly v: Float32Array
}

/**
 * Every part this rank owns, as rectangular slices of the global parameters: over all ranks,
 * they cover every parameter once (the tied copy's parts are left out: they are the first
 * stage's, bit for bit), once per instance of a hybrid-sharded optimizer (`firstInstanceOnly`:
 * the first instance's alone, which cover every parameter once).
 * @category mapping
 */
export const ownedSlices = (opt: DistributedOptimizer, firstInstanceOnly = false): Array<OwnedSlice> =>
  owned(opt).flatMap((o) => {
    if (o.held.tiedCopy === true || (firstInstanceOnly && !inFirstInstance(o.bucket, opt.rank))) return []
    const shape = o.held.slice.map(([a, b]) => b - a)
    return Pieces.ofRun(shape, o.from, o.to).map((p) => {
      const at = o.at + p.from - o.from
      const n = p.to - p.from
      return {
        name: o.held.spec.name,
        shape: o.held.spec.shape,
        slice: Pieces.globalRanges(o.held.slice, p),
        value: o.held.value.data.subarray(p.from, p.to),
        grad: o.bucket.grad.subarray(at, at + n),
        m: o.bucket.moments.m.subarray(at, at + n),
        v: o.bucket.moments.v.subarray(at, at + n),
      }
    })
  })

/**
 * Takes this rank's parts of whole per-shard moments (as a checkpoint loads them).
 * @category combinators
 */
export const adopt = (opt: DistributedOptimizer, whole: ReadonlyMap<string, Optimizer.Moments>): void => {
  for (const o of owned(opt)) {
    const s = whole.get(o.held.spec.name) as Optimizer.Moments
    o.bucket.moments.m.set(s.m.subarray(o.from, o.to), o.at)
    o.bucket.moments.v.set(s.v.subarray(o.from, o.to), o.at)
  }
  for (const [name, s] of opt.unbucketed) {
    const from = whole.get(name) as Optimizer.Moments
    s.m.set(from.m)
    s.v.set(from.v)
  }
}

/**
 * What a rank saves in a checkpoint: its owned parts as slices, and the parameters left out of
 * the buckets whole (Checkpoint).
 * @category mapping
 */
export const savedSlices = (opt: DistributedOptimizer, params: ReadonlyMap<string, RankParams.Held>): Array<Omit<OwnedSlice, "grad">> => [
  ...ownedSlices(opt, true),
  ...[...opt.unbucketed].flatMap(([name, s]) => {
    const h = params.get(name) as RankParams.Held
    return h.tiedCopy === true ? [] : [{ name, shape: h.spec.shape, slice: h.slice, value: h.value.data, m: s.m, v: s.v }]
  }),
]
