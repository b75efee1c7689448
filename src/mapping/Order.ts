/**
 * Order: the order string that lays out both rank grids (`tp-cp-ep-dp-pp` by default).
 *
 * The leftmost token varies fastest (mixed radix). Tokens are case-insensitive and joined by `-`.
 * A token whose size is 1 in both grids may be left out; it is appended at the end, where a size-1
 * axis changes nothing in the layout (Megatron-Core does the same).
 */
import * as Result from "effect/Result"
import { type OrderToken, isOrderToken, orderTokens } from "./Axis.js"
import * as ConfigError from "../errors/ConfigError.js"

/**
 * A parsed order: the tokens as written, and the full list with missing tokens appended.
 * @category models
 */
export interface Order {
  /** The tokens the user wrote, lower-cased, in their order. */
  readonly written: ReadonlyArray<OrderToken>
  /** All five tokens: the written ones, then the missing ones (size 1) in default order. */
  readonly full: ReadonlyArray<OrderToken>
}

/**
 * The default order: tensor fastest, then context, expert, data, and pipeline slowest.
 * @category constructors
 */
export const defaultOrder = "tp-cp-ep-dp-pp"

/**
 * Parses an order string; unknown, empty and repeated tokens are ConfigErrors naming `order`.
 * @category constructors
 */
export const parse = (text: string): Result.Result<Order, ConfigError.ConfigError> => {
  const fixExample = `write the tokens tp, cp, ep, dp, pp joined by '-', each at most once, e.g. ${defaultOrder}`
  const parts = text.trim().toLowerCase().split("-")
  const written: Array<OrderToken> = []
  for (const part of parts) {
    if (part === "") {
      return Result.fail(ConfigError.make("order", text, "has an empty token", fixExample))
    }
    if (!isOrderToken(part)) {
      return Result.fail(ConfigError.make("order", text, `has the unknown token '${part}'`, fixExample))
    }
    if (written.includes(part)) {
      return Result.fail(ConfigError.make("order", text, `repeats the token '${part}'`, fixExample))
    }
    written.push(part)
  }
  const full = [...written, ...orderTokens.filter((t) => !written.includes(t))]
  return Result.succeed({ written, full })
}

/**
 * The order as text, as the user wrote it (lower-cased).
 * @category mapping
 */
export const format = (order: Order): string => order.written.join("-")

/**
 * Whether the written order ends with the pipeline axis (or leaves it out, which puts it last).
 * @category mapping
 */
export const endsWithPp = (order: Order): boolean => order.written[order.written.length - 1] === "pp" || !order.written.includes("pp")
