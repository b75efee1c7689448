/**
 * Placement: where a group's ranks sit on the cluster's nodes, which decides whether its
 * traffic crosses NVLink or the network. Every group of a family is a translate of the group
 * that holds rank 0 (the grids are mixed-radix, RankGrid), so that group stands for all of them.
 */
import type { AxisName } from "../mapping/Axis.js"
import * as InstanceSlices from "../mapping/InstanceSlices.js"
import * as RankGrid from "../mapping/RankGrid.js"

/**
 * How one family's groups lie on the nodes.
 * @category models
 */
export interface Spread {
  /** Ranks in a group. */
  readonly size: number
  /** Nodes a group touches. */
  readonly nodes: number
  /** The peers of a member on its own node (not counting itself). */
  readonly peersInNode: number
}

/**
 * The spread of the groups over `names` of `grid` on nodes of `gpusPerNode` ranks.
 * @category mapping
 */
const spread = (grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>, gpusPerNode: number): Spread => spreadOfMembers(RankGrid.groupOf(grid, 0, names), gpusPerNode)

/** The spread of a group holding rank 0 (its first member) on nodes of `gpusPerNode` ranks. */
const spreadOfMembers = (members: ReadonlyArray<number>, gpusPerNode: number): Spread => {
  const nodes = new Set<number>()
  let peersInNode = 0
  for (const r of members) {
    const node = Math.floor(r / gpusPerNode)
    nodes.add(node)
    if (node === 0 && r !== 0) peersInNode++
  }
  return { size: members.length, nodes: nodes.size, peersInNode }
}

/**
 * The two groups hybrid sharding makes of a group of `instances` slices (the distributed
 * optimizer's instances: consecutive members, in the order training lists them): `intra`, a
 * slice, and `inter`, the members at one place in every slice.
 * @category models
 */
export interface Sliced {
  readonly intra: Spread
  readonly inter: Spread
}

/**
 * The spreads of the slices of the group over `names` of `grid` (the one holding rank 0) into
 * `instances` instances; `instances` divides its size.
 * @category mapping
 */
const sliced = (grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>, gpusPerNode: number, instances: number): Sliced => {
  const { intra, inter } = InstanceSlices.of(RankGrid.groupOf(grid, 0, names), instances, 0)
  return { intra: spreadOfMembers(intra, gpusPerNode), inter: spreadOfMembers(inter, gpusPerNode) }
}

/** The strides and sizes of `names`' axes: what a group's placement depends on (with the node size). */
const axesKey = (grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>): string =>
  names
    .map((n) => {
      const a = RankGrid.axis(grid, n)
      return `${a.stride}x${a.size}`
    })
    .join()

/**
 * Spreads already computed, by the strides and sizes of a family's axes.
 * @category models
 */
export type Memo = Map<string, Spread | Sliced>

/**
 * `spread`, remembered in `memo`: a group's placement depends only on its axes' strides and
 * sizes (and the node size), which many mappings share.
 * @category mapping
 */
export const spreadOf = (memo: Memo, grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>, gpusPerNode: number): Spread => {
  const key = `${gpusPerNode}:${axesKey(grid, names)}`
  const known = memo.get(key) as Spread | undefined
  if (known !== undefined) return known
  const computed = spread(grid, names, gpusPerNode)
  memo.set(key, computed)
  return computed
}

/**
 * `sliced`, remembered in `memo` as `spreadOf` remembers spreads.
 * @category mapping
 */
export const slicedOf = (memo: Memo, grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>, gpusPerNode: number, instances: number): Sliced => {
  const key = `${gpusPerNode}/${instances}:${axesKey(grid, names)}`
  const known = memo.get(key) as Sliced | undefined
  if (known !== undefined) return known
  const computed = sliced(grid, names, gpusPerNode, instances)
  memo.set(key, computed)
  return computed
}
