/**
 * Placement: where a group's ranks sit on the cluster's nodes, which decides whether its
 * traffic crosses NVLink or the network. Every group of a family is a translate of the group
 * that holds rank 0 (the grids are mixed-radix, RankGrid), so that group stands for all of them.
 */
import type { AxisName } from "../mapping/Axis.js"
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
const spread = (grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>, gpusPerNode: number): Spread => {
  const members = RankGrid.groupOf(grid, 0, names)
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
 * Spreads already computed, by the strides and sizes of a family's axes.
 * @category models
 */
export type Memo = Map<string, Spread>

/**
 * `spread`, remembered in `memo`: a group's placement depends only on its axes' strides and
 * sizes (and the node size), which many mappings share.
 * @category mapping
 */
export const spreadOf = (memo: Memo, grid: RankGrid.RankGrid, names: ReadonlyArray<AxisName>, gpusPerNode: number): Spread => {
  const key = `${gpusPerNode}:${names.map((n) => {
    const a = RankGrid.axis(grid, n)
    return `${a.stride}x${a.size}`
  })}`
  const known = memo.get(key)
  if (known !== undefined) return known
  const computed = spread(grid, names, gpusPerNode)
  memo.set(key, computed)
  return computed
}
