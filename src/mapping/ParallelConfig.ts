/**
 * ParallelConfig: a validated parallel configuration of MoE Parallel Folding.
 *
 * Attention layers run on the dense grid tp x cp x dp x pp; MoE layers on the expert grid
 * etp x ep x edp x pp, over the same ranks and the same pipeline groups. The user gives world,
 * tp, cp, pp, ep and optionally etp, vpp and the order; dp and edp are derived:
 *
 *   dp  = world / (tp * cp * pp)        edp = world / (etp * ep * pp)
 *
 * etp defaults to tp when it is omitted (Megatron-Core's default, which surprises users), so the
 * config records whether etp was given and every output says which etp is in effect.
 */
import * as Result from "effect/Result"
import type { OrderToken } from "./Axis.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as Divisors from "./Divisors.js"
import * as Order from "./Order.js"
import * as RankGrid from "./RankGrid.js"

/**
 * What a user writes: the degrees, and optionally etp, vpp and the order.
 * @category models
 */
export interface ParallelInput {
  readonly world: number | undefined
  readonly tp?: number | undefined
  readonly cp?: number | undefined
  readonly pp?: number | undefined
  readonly ep?: number | undefined
  readonly etp?: number | undefined
  readonly vpp?: number | undefined
  readonly order?: string | undefined
  /** Layers of the first and last pipeline rank (pipeline/Partition checks them against the model). */
  readonly firstStageLayers?: number | undefined
  readonly lastStageLayers?: number | undefined
  /** Layers of every global stage (a custom layout: pipeline/PipelineLayout; Partition checks them). */
  readonly stageLayers?: ReadonlyArray<number> | undefined
}

/**
 * The sizes of both grids (dp and edp derived, etp the one in effect).
 * @category models
 */
export interface Sizes {
  readonly tp: number
  readonly cp: number
  readonly dp: number
  readonly pp: number
  readonly etp: number
  readonly ep: number
  readonly edp: number
}

/**
 * A configuration that passed every check.
 * @category models
 */
export interface ParallelConfig {
  readonly world: number
  readonly sizes: Sizes
  /** Whether etp came from the user (false: it defaulted to tp). */
  readonly etpGiven: boolean
  /** Virtual pipeline stages per rank, or undefined without interleaving. */
  readonly vpp: number | undefined
  readonly order: Order.Order
  /** Layers of pp rank 0 and of pp rank pp-1 where they are not an equal share (pipeline/Partition). */
  readonly firstStageLayers?: number | undefined
  readonly lastStageLayers?: number | undefined
  /** Layers of every global stage, where a custom layout gives them (pipeline/Partition). */
  readonly stageLayers?: ReadonlyArray<number> | undefined
}

/**
 * The largest world pleat lays out; larger worlds are rejected rather than exhausting memory.
 * @category configuration
 */
const maxWorld = 1 << 22

/** The size of a token's axis in the dense grid (ep has size 1 there). */
const denseSize = (sizes: Sizes, token: OrderToken): number => (token === "ep" ? 1 : sizes[token])

/** The size of a token's axis in the expert grid (cp has size 1 there; tp is etp, dp is edp). */
const expertSize = (sizes: Sizes, token: OrderToken): number => {
  switch (token) {
    case "tp":
      return sizes.etp
    case "cp":
      return 1
    case "dp":
      return sizes.edp
    default:
      return sizes[token]
  }
}

/**
 * The dense (attention) grid of a configuration.
 * @category constructors
 */
export const denseGrid = (config: ParallelConfig): RankGrid.RankGrid => RankGrid.make("dense", config.order.full, (t) => denseSize(config.sizes, t))

/**
 * The expert (MoE) grid of a configuration.
 * @category constructors
 */
export const expertGrid = (config: ParallelConfig): RankGrid.RankGrid => RankGrid.make("expert", config.order.full, (t) => expertSize(config.sizes, t))

const positiveInteger = (field: string, value: number | undefined, fallback: number | undefined): Result.Result<number, ConfigError.ConfigError> => {
  const v = value ?? fallback
  if (v === undefined) {
    return Result.fail(ConfigError.make(field, undefined, "is required", `pass --${field} N with N a positive integer`))
  }
  if (!Number.isSafeInteger(v) || v < 1) {
    return Result.fail(ConfigError.make(field, v, "is not a positive integer", `pass --${field} N with N = 1, 2, 3, ...`))
  }
  return Result.succeed(v)
}

/** The first few divisors of n, for error messages that suggest sizes that fit. */
const divisors = (n: number): string => {
  const all = Divisors.of(n)
  return all.slice(0, 12).join(", ") + (all.length > 12 ? ", ..." : "")
}

/**
 * Checks a user's configuration. Every rejection is a ConfigError naming the field, the value
 * and the fix. The checks run in a fixed order, so one input always gives the same error:
 * positive integers; world divisible by tp*cp*pp, then by etp*ep*pp; order tokens known and
 * unique; no axis of size > 1 left out; tp before ep; pp last unless pp = 1 or dp = edp; equal
 * pipeline groups; vpp needs pp > 1.
 * @category constructors
 */
export const validate = (input: ParallelInput): Result.Result<ParallelConfig, ConfigError.ConfigError> =>
  Result.gen(function* () {
    const world = yield* positiveInteger("world", input.world, undefined)
    const tp = yield* positiveInteger("tp", input.tp, 1)
    const cp = yield* positiveInteger("cp", input.cp, 1)
    const pp = yield* positiveInteger("pp", input.pp, 1)
    const ep = yield* positiveInteger("ep", input.ep, 1)
    const etp = yield* positiveInteger("etp", input.etp, tp)
    const vpp = input.vpp === undefined ? undefined : yield* positiveInteger("vpp", input.vpp, undefined)
    if (world > maxWorld) {
      return yield* Result.fail(ConfigError.make("world", world, `is larger than the ${maxWorld} ranks pleat lays out`, `use a world of at most ${maxWorld}`))
    }

    const dense = tp * cp * pp
    if (world % dense !== 0) {
      return yield* Result.fail(
        ConfigError.make(
          "world",
          world,
          `is not divisible by tp*cp*pp = ${tp}*${cp}*${pp} = ${dense}`,
          `make world a multiple of ${dense}, or choose tp, cp, pp whose product divides ${world} (its divisors: ${divisors(world)})`,
        ),
      )
    }
    const expert = etp * ep * pp
    if (world % expert !== 0) {
      const etpNote = input.etp === undefined ? ` (etp defaulted to tp = ${tp}; pass --etp 1 to keep experts unsharded)` : ""
      return yield* Result.fail(
        ConfigError.make(
          "world",
          world,
          `is not divisible by etp*ep*pp = ${etp}*${ep}*${pp} = ${expert}${etpNote}`,
          `make world a multiple of ${expert}, or choose etp, ep, pp whose product divides ${world}`,
        ),
      )
    }
    const sizes: Sizes = { tp, cp, dp: world / dense, pp, etp, ep, edp: world / expert }
    const order = yield* Order.parse(input.order ?? Order.defaultOrder)
    const text = Order.format(order)

    for (const token of order.full) {
      if (order.written.includes(token)) continue
      const size = Math.max(denseSize(sizes, token), expertSize(sizes, token))
      if (size > 1) {
        const which = token === "tp" ? "tp/etp" : token === "dp" ? "dp/edp" : token
        return yield* Result.fail(
          ConfigError.make("order", text, `leaves out '${token}' although ${which} has size ${size}`, `add '${token}' to the order, e.g. ${Order.defaultOrder}`),
        )
      }
    }
    const tpAt = order.written.indexOf("tp")
    const epAt = order.written.indexOf("ep")
    if (tpAt >= 0 && epAt >= 0 && tpAt > epAt) {
      return yield* Result.fail(
        ConfigError.make(
          "order",
          text,
          "puts 'ep' before 'tp', but dispatch needs the etp-ep group-local rank to be etp + ETP*ep",
          "move 'tp' before 'ep' in the order, e.g. tp-cp-ep-dp-pp",
        ),
      )
    }
    if (!Order.endsWithPp(order) && pp > 1 && sizes.dp !== sizes.edp) {
      return yield* Result.fail(
        ConfigError.make(
          "order",
          text,
          `does not end with 'pp', which needs pp = 1 or dp = edp (here pp=${pp}, dp=${sizes.dp}, edp=${sizes.edp})`,
          "move 'pp' to the end of the order, e.g. tp-cp-ep-dp-pp",
        ),
      )
    }
    const ends = {
      ...(input.firstStageLayers === undefined ? {} : { firstStageLayers: input.firstStageLayers }),
      ...(input.lastStageLayers === undefined ? {} : { lastStageLayers: input.lastStageLayers }),
      ...(input.stageLayers === undefined ? {} : { stageLayers: input.stageLayers }),
    }
    const config: ParallelConfig = { world, sizes, etpGiven: input.etp !== undefined, vpp, order, ...ends }
    if (!samePipelineGroups(config)) {
      return yield* Result.fail(
        ConfigError.make(
          "order",
          text,
          "gives the attention and MoE grids different pipeline groups",
          "move 'pp' to the end of the order (tp-cp-ep-dp-pp), or make the axes before 'pp' have equal products in both grids",
        ),
      )
    }
    if (vpp !== undefined && pp <= 1) {
      return yield* Result.fail(ConfigError.make("vpp", vpp, `needs pipeline parallelism but pp is ${pp}`, "set --pp to 2 or more, or leave out --vpp"))
    }
    return config
  })

/**
 * Both grids must put the same ranks in each pipeline group: the stages are shared. Rank r's pp
 * group is r with its pp digit varied, and the groups are listed by r's other digits, which read
 * as (r mod stride) + stride * (r div (stride*pp)) in either grid. So with pp > 1 the two lists of
 * groups are identical exactly when pp has the same stride in both grids (the property suite
 * checks this against the full lists).
 */
const samePipelineGroups = (config: ParallelConfig): boolean =>
  config.sizes.pp === 1 || RankGrid.axis(denseGrid(config), "pp").stride === RankGrid.axis(expertGrid(config), "pp").stride

/**
 * Validates or throws the ConfigError: for scripts and tests that know their input is good.
 * @category constructors
 */
export const make = (input: ParallelInput): ParallelConfig => {
  const r = validate(input)
  if (Result.isFailure(r)) throw r.failure
  return r.success
}
