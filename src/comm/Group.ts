/**
 * Group: a named, ordered set of ranks that run collectives together.
 *
 * The order is the group-local rank order (position i holds group-local rank i); groups come
 * from the families of a mapping (`tp`, `ep`, `etp-ep`, ...) in the reference order, so every
 * rank that builds "its" group of a family gets the same list.
 */
import * as Families from "../mapping/Families.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as RankGrid from "../mapping/RankGrid.js"

/**
 * A group of ranks.
 * @category models
 */
export interface Group {
  /** A name for messages: the family and the group's index in it (`ep#1`), or any label. */
  readonly name: string
  readonly ranks: ReadonlyArray<number>
  /** Identity of the group: name and members (computed once; collectives look it up often). */
  readonly key: string
}

/**
 * A group from a name and its ranks (distinct non-negative integers, in group-local order).
 * @category constructors
 */
export const make = (name: string, ranks: ReadonlyArray<number>): Group => {
  const seen = new Set<number>()
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 0) throw new RangeError(`group ${name}: rank ${r} is not a non-negative integer`)
    if (seen.has(r)) throw new RangeError(`group ${name}: rank ${r} appears twice in [${ranks.join(", ")}]`)
    seen.add(r)
  }
  if (ranks.length === 0) throw new RangeError(`group ${name}: a group needs at least one rank`)
  return { name, ranks: Object.freeze([...ranks]), key: `${name}[${ranks.join(",")}]` }
}

/**
 * The group of `family` that holds `rank`, named `family#index`.
 * @category constructors
 */
export const ofFamily = (config: ParallelConfig.ParallelConfig, family: Families.FamilyName, rank: number): Group => {
  if (family !== "embedding") {
    // One group's members straight from the grid: every rank asks for its groups at start-up,
    // and listing whole families there would cost O(world) per call.
    const f = Families.gridFamilies[family]
    const grid = f.grid === "dense" ? ParallelConfig.denseGrid(config) : ParallelConfig.expertGrid(config)
    if (!Number.isInteger(rank) || rank < 0 || rank >= config.world) throw new RangeError(`rank ${rank} is in no ${family} group of this mapping`)
    return make(`${family}#${RankGrid.groupIndex(grid, rank, f.axes)}`, RankGrid.groupOf(grid, rank, f.axes))
  }
  const groups = Families.family(config, family)
  const index = groups.findIndex((g) => g.includes(rank))
  if (index < 0) throw new RangeError(`rank ${rank} is in no ${family} group of this mapping`)
  return make(`${family}#${index}`, groups[index] as Array<number>)
}

/**
 * The group of every rank 0..world-1.
 * @category constructors
 */
export const world = (size: number): Group =>
  make(
    "world",
    Array.from({ length: size }, (_, i) => i),
  )

/**
 * The group-local rank of `rank`, or -1 when it is not a member.
 * @category mapping
 */
export const localRank = (group: Group, rank: number): number => group.ranks.indexOf(rank)

/**
 * A key that identifies the group: name and members (two groups with one name but other
 * members never meet).
 * @category mapping
 */
export const key = (group: Group): string => group.key

/**
 * The group for messages: `ep#1 [4,5,6,7]`.
 * @category mapping
 */
export const format = (group: Group): string => `${group.name} [${group.ranks.join(",")}]`
