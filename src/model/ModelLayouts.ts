/**
 * ModelLayouts: the layouts of the model's edges: the token ids (the micro-batch's tokens split
 * over cp), the hidden rows on every edge and pipeline link (over cp, and tp under sequence
 * parallelism) and the loss (each cp rank's share).
 */
import type { Group } from "../comm/Group.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import type { ModelContext } from "./ModelContext.js"

/**
 * The part of the context that fixes the layouts of the model's edges.
 * @category models
 */
export type LayoutContext = Pick<ModelContext, "sizes" | "microBatch" | "groups" | "sequenceParallel">

const shardOf = (axis: "tp" | "cp", g: Group): TensorLayout.Shard => ({ axis, size: g.ranks.length })

/** The tp shard. */
const tpShard = (c: Pick<ModelContext, "groups">): TensorLayout.Shard => shardOf("tp", c.groups.tp)

/**
 * Layout of the token ids and targets: the micro-batch's tokens split over cp.
 * @category mapping
 */
export const tokensLayout = (c: LayoutContext): TensorLayout.TensorLayout =>
  TensorLayout.make([TensorLayout.dim("tokens", c.microBatch * c.sizes.seq, [shardOf("cp", c.groups.cp)])])

/**
 * Layout of the hidden rows on every edge of the model (and on the pipeline links).
 * @category mapping
 */
export const hiddenLayout = (c: LayoutContext): TensorLayout.TensorLayout =>
  TensorLayout.make([
    TensorLayout.dim("tokens", c.microBatch * c.sizes.seq, [shardOf("cp", c.groups.cp), ...(c.sequenceParallel ? [tpShard(c)] : [])]),
    TensorLayout.dim("hidden", c.sizes.hidden),
  ])

/**
 * Layout of the loss: a scalar, each cp rank's share of the micro-batch's loss.
 * @category mapping
 */
export const lossLayout = (c: LayoutContext): TensorLayout.TensorLayout => TensorLayout.make([], { partial: [shardOf("cp", c.groups.cp)] })
