/**
 * Axis names and order tokens.
 *
 * "axis" always means a mesh axis (never a tensor dimension). The order string is written with five
 * tokens, `tp cp ep dp pp`; one order string serves both grids (Megatron-Core semantics):
 *
 *   token  dense grid (attention)   expert grid (MoE)
 *   tp     tp                       etp
 *   cp     cp                       cp  (always size 1)
 *   ep     ep (always size 1)       ep
 *   dp     dp                       edp
 *   pp     pp                       pp
 */

/**
 * A token of the order string.
 * @category models
 */
export type OrderToken = "tp" | "cp" | "ep" | "dp" | "pp"

/**
 * Every order token, in the default order.
 * @category models
 */
export const orderTokens: ReadonlyArray<OrderToken> = ["tp", "cp", "ep", "dp", "pp"]

/**
 * An axis of the dense (attention) grid.
 * @category models
 */
export type DenseAxis = "tp" | "cp" | "dp" | "pp"

/**
 * An axis of the expert (MoE) grid.
 * @category models
 */
export type ExpertAxis = "etp" | "ep" | "edp" | "pp"

/**
 * Any axis name, dense or expert.
 * @category models
 */
export type AxisName = DenseAxis | ExpertAxis | "cp" | "ep"

/**
 * Which grid a layout belongs to.
 * @category models
 */
export type GridKind = "dense" | "expert"

/**
 * The axis name a token stands for in each grid.
 * @category mapping
 */
export const axisOfToken = (kind: GridKind, token: OrderToken): AxisName => {
  if (kind === "dense") return token
  switch (token) {
    case "tp":
      return "etp"
    case "dp":
      return "edp"
    default:
      return token
  }
}

/**
 * Whether a string is an order token.
 * @category guards
 */
export const isOrderToken = (s: string): s is OrderToken => (orderTokens as ReadonlyArray<string>).includes(s)
