/**
 * RankGrid: one mixed-radix layout of the ranks over named axes.
 *
 * A grid lists its axes in order-string order; the leftmost axis varies fastest:
 *
 *   stride_i = size_0 * ... * size_(i-1)      rank = sum_i coord_i * stride_i
 *
 * Worked example (dense grid of W=16, tp=2 cp=2 dp=2 pp=2, order tp-cp-ep-dp-pp): strides are
 * tp 1, cp 2, ep 4 (size 1), dp 4, pp 8, so rank 13 = 1*1 + 0*2 + 1*4 + 1*8 has tp=1 cp=0 dp=1 pp=1.
 *
 * A group over a set of axes ("masked" axes) holds the ranks that share every other ("unmasked")
 * coordinate. Groups come in the reference order: ordered by their unmasked coordinates (first
 * unmasked axis fastest), members ordered by their masked coordinates (first masked axis fastest),
 * so the i-th member of a group has group-local rank i.
 */
import { type AxisName, type GridKind, type OrderToken, axisOfToken } from "./Axis.js"

/**
 * One axis of a grid: its name in this grid, the order token it came from, size and stride.
 * @category models
 */
export interface GridAxis {
  readonly name: AxisName
  readonly token: OrderToken
  readonly size: number
  readonly stride: number
}

/**
 * A layout of `world` ranks over axes whose sizes multiply to `world`.
 * @category models
 */
export interface RankGrid {
  readonly kind: GridKind
  readonly world: number
  readonly axes: ReadonlyArray<GridAxis>
}

/**
 * Builds a grid from order tokens and the size of each token's axis in this grid.
 * The sizes must multiply to `world` (ParallelConfig guarantees it).
 * @category constructors
 */
export const make = (kind: GridKind, tokens: ReadonlyArray<OrderToken>, sizeOf: (token: OrderToken) => number): RankGrid => {
  let stride = 1
  const axes: Array<GridAxis> = []
  for (const token of tokens) {
    const size = sizeOf(token)
    axes.push({ name: axisOfToken(kind, token), token, size, stride })
    stride *= size
  }
  return { kind, world: stride, axes }
}

/**
 * The axis of this grid with the given name; an unknown name is a programming error.
 * @category mapping
 */
export const axis = (grid: RankGrid, name: AxisName): GridAxis => {
  const found = grid.axes.find((a) => a.name === name)
  if (found === undefined) {
    throw new Error(`the ${grid.kind} grid has no axis '${name}' (axes: ${grid.axes.map((a) => a.name).join(", ")})`)
  }
  return found
}

/**
 * The coordinate of `rank` along one axis.
 * @category mapping
 */
export const coordinate = (grid: RankGrid, rank: number, name: AxisName): number => {
  const a = axis(grid, name)
  return Math.floor(rank / a.stride) % a.size
}

/**
 * All coordinates of `rank`, keyed by axis name.
 * @category mapping
 */
export const coordinates = (grid: RankGrid, rank: number): Readonly<Partial<Record<AxisName, number>>> => {
  const out: Partial<Record<AxisName, number>> = {}
  for (const a of grid.axes) out[a.name] = Math.floor(rank / a.stride) % a.size
  return out
}

/**
 * The rank at the given coordinates (missing axes count as 0); the inverse of `coordinates`.
 * @category mapping
 */
export const rankAt = (grid: RankGrid, coords: Readonly<Partial<Record<AxisName, number>>>): number => {
  let rank = 0
  for (const a of grid.axes) {
    const c = coords[a.name] ?? 0
    if (!Number.isInteger(c) || c < 0 || c >= a.size) {
      throw new RangeError(`coordinate ${a.name}=${c} is outside 0..${a.size - 1} of the ${grid.kind} grid`)
    }
    rank += c * a.stride
  }
  return rank
}

/** Splits the grid's axes into masked (in `names`) and unmasked, keeping the grid's order. */
const split = (grid: RankGrid, names: ReadonlyArray<AxisName>) => {
  for (const n of names) axis(grid, n)
  const masked = grid.axes.filter((a) => names.includes(a.name))
  const unmasked = grid.axes.filter((a) => !names.includes(a.name))
  return { masked, unmasked }
}

/** The rank offset of mixed-radix index `index` over `axes` (first axis fastest). */
const offsetOf = (axes: ReadonlyArray<GridAxis>, index: number): number => {
  let rest = index
  let offset = 0
  for (const a of axes) {
    offset += (rest % a.size) * a.stride
    rest = Math.floor(rest / a.size)
  }
  return offset
}

/** The mixed-radix index of `rank` over `axes` (first axis fastest): the inverse of offsetOf. */
const indexOf = (axes: ReadonlyArray<GridAxis>, rank: number): number => {
  let index = 0
  let scale = 1
  for (const a of axes) {
    index += (Math.floor(rank / a.stride) % a.size) * scale
    scale *= a.size
  }
  return index
}

/**
 * Every group over the named axes, in the reference order (see the file header).
 * `groups(grid, ["dp", "cp"])` equals `groups(grid, ["cp", "dp"])`: only the grid's order counts.
 * @category mapping
 */
export const groups = (grid: RankGrid, names: ReadonlyArray<AxisName>): Array<Array<number>> => {
  const { masked, unmasked } = split(grid, names)
  const groupSize = masked.reduce((p, a) => p * a.size, 1)
  const numGroups = grid.world / groupSize
  // Member offsets are the same for every group; compute them once.
  const memberOffsets = new Array<number>(groupSize)
  for (let q = 0; q < groupSize; q++) memberOffsets[q] = offsetOf(masked, q)
  const out = new Array<Array<number>>(numGroups)
  for (let g = 0; g < numGroups; g++) {
    const base = offsetOf(unmasked, g)
    const members = new Array<number>(groupSize)
    for (let q = 0; q < groupSize; q++) members[q] = base + (memberOffsets[q] as number)
    out[g] = members
  }
  return out
}

/**
 * The index of the group over `names` that holds `rank`, in the order of `groups`.
 * @category mapping
 */
export const groupIndex = (grid: RankGrid, rank: number, names: ReadonlyArray<AxisName>): number => indexOf(split(grid, names).unmasked, rank)

/**
 * The group-local rank of `rank` in its group over `names`: its position in that group.
 * Example: in the expert grid the etp-ep group-local rank is etp + ETP * ep.
 * @category mapping
 */
export const localRank = (grid: RankGrid, rank: number, names: ReadonlyArray<AxisName>): number => indexOf(split(grid, names).masked, rank)

/**
 * The group over `names` that holds `rank`.
 * @category mapping
 */
export const groupOf = (grid: RankGrid, rank: number, names: ReadonlyArray<AxisName>): Array<number> => {
  const { masked, unmasked } = split(grid, names)
  const base = offsetOf(unmasked, indexOf(unmasked, rank))
  const size = masked.reduce((p, a) => p * a.size, 1)
  const members = new Array<number>(size)
  for (let q = 0; q < size; q++) members[q] = base + offsetOf(masked, q)
  return members
}
