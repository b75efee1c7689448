/**
 * Mappings: fast-check arbitraries of valid parallel mappings (all five degrees, etp folded or
 * not, vpp, orders), bounded by a world size and by what a model needs.
 *
 * Each value is plain data (`MappingArgs`), so it prints readably in a counterexample and can be
 * sent to ranks on any backend; `toConfig` turns it into the validated ParallelConfig.
 */
import * as Result from "effect/Result"
import fc from "fast-check"
import * as Divisors from "../mapping/Divisors.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as ModelConfig from "../train/ModelConfig.js"

/**
 * A mapping as plain data.
 * @category models
 */
export interface MappingArgs {
  readonly world: number
  readonly tp: number
  readonly cp: number
  readonly pp: number
  readonly ep: number
  readonly etp: number
  readonly vpp?: number | undefined
  readonly order: string
}

/**
 * What a mapping arbitrary draws from.
 * @category models
 */
export interface MappingOptions {
  /** The largest world (default 8). */
  readonly maxWorld?: number | undefined
  /** The smallest world (default 1). */
  readonly minWorld?: number | undefined
  /** Draw vpp > 1 too (needs pp > 1; default false). */
  readonly vpp?: boolean | undefined
  /** Keep only mappings this predicate accepts (e.g. `fitsModel`). */
  readonly fits?: ((config: ParallelConfig.ParallelConfig) => boolean) | undefined
}

const permutations = <T>(xs: ReadonlyArray<T>): Array<Array<T>> =>
  xs.length <= 1 ? [[...xs]] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]))

/** Every order with tp before ep (the 60 that can validate), Megatron's default first (shrinking goes there). */
const orders = permutations(["tp", "cp", "ep", "dp", "pp"])
  .filter((o) => o.indexOf("tp") < o.indexOf("ep"))
  .map((o) => o.join("-"))
  .sort((a, b) => (a === "tp-cp-ep-dp-pp" ? -1 : b === "tp-cp-ep-dp-pp" ? 1 : 0))

const degree = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(1, 2, 4) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) })

/**
 * The validated configuration of a mapping (throws the ConfigError if it is not valid).
 * @category constructors
 */
export const toConfig = (m: MappingArgs): ParallelConfig.ParallelConfig => ParallelConfig.make(m)

/**
 * Valid mappings: tp, cp, pp, dp drawn with product in [minWorld, maxWorld], then ep and etp
 * whose product divides world/pp, an order, and (with `vpp`) a vpp; only those
 * ParallelConfig.validate accepts (and `fits`, when given).
 * @category constructors
 */
export const mappings = (options: MappingOptions = {}): fc.Arbitrary<MappingArgs> => {
  const maxWorld = options.maxWorld ?? 8
  const minWorld = options.minWorld ?? 1
  return fc
    .record({ tp: degree, cp: degree, pp: degree, dp: degree, order: fc.constantFrom(...orders), vppPick: fc.nat(), epPick: fc.nat(), etpPick: fc.nat() })
    .filter(({ tp, cp, pp, dp }) => tp * cp * pp * dp <= maxWorld && tp * cp * pp * dp >= minWorld)
    .map(({ tp, cp, pp, dp, order, vppPick, epPick, etpPick }) => {
      const world = tp * cp * pp * dp
      const eps = Divisors.of(world / pp)
      const ep = eps[epPick % eps.length] as number
      const etps = Divisors.of(world / (pp * ep))
      const etp = etps[etpPick % etps.length] as number
      const vpp = options.vpp === true && pp > 1 ? 1 + (vppPick % 3) : undefined
      return { world, tp, cp, pp, ep, etp, ...(vpp === undefined || vpp === 1 ? {} : { vpp }), order }
    })
    .filter((m) => {
      const r = ParallelConfig.validate(m)
      return Result.isSuccess(r) && (options.fits === undefined || options.fits(r.success))
    })
}

/**
 * A `fits` predicate: the model and batch fit the mapping (the checks training applies).
 * @category constructors
 */
export const fitsModel =
  (model: ModelConfig.ModelConfig, batch: ModelConfig.BatchConfig) =>
  (config: ParallelConfig.ParallelConfig): boolean =>
    ModelConfig.problemOf(model, batch, config) === undefined

/**
 * A mapping in words, for messages: `world 8: tp 2 cp 1 pp 2 ep 4 etp 1 (order tp-cp-ep-dp-pp)`.
 * @category formatting
 */
export const describe = (m: MappingArgs): string =>
  `world ${m.world}: tp ${m.tp} cp ${m.cp} pp ${m.pp}${m.vpp === undefined ? "" : ` vpp ${m.vpp}`} ep ${m.ep} etp ${m.etp} (order ${m.order})`
