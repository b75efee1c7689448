/**
 * Report: everything `pleat groups` says about a configuration, as one plain value.
 *
 * The JSON form is a contract (`pleat groups --json`): exactly the keys world, order, sizes,
 * groups and ranks, with the families in Families.familyNames order.
 */
import * as Families from "./Families.js"
import * as Folding from "./Folding.js"
import * as Order from "./Order.js"
import type * as ParallelConfig from "./ParallelConfig.js"

/**
 * The report of one configuration.
 * @category models
 */
export interface Report {
  readonly world: number
  readonly order: string
  readonly sizes: ParallelConfig.Sizes
  readonly groups: Families.Families
  readonly ranks: ReadonlyArray<Folding.RankPlace>
}

/**
 * Builds the report of a configuration.
 * @category constructors
 */
export const make = (config: ParallelConfig.ParallelConfig): Report => {
  const s = config.sizes
  return {
    world: config.world,
    order: Order.format(config.order),
    // Key order is part of the contract.
    sizes: { tp: s.tp, cp: s.cp, dp: s.dp, pp: s.pp, etp: s.etp, ep: s.ep, edp: s.edp },
    groups: Families.all(config),
    ranks: Folding.places(Folding.make(config)),
  }
}
