/**
 * EqualsOneRank: the property pleat proves of its own layers, for a user's: a rank program run
 * under any valid mapping gives what the same program gives on one rank, outputs and gradients,
 * on any backend.
 *
 * The program is a named export of a module (so that worker threads and processes can import
 * it), typed `(rank, args: RankCase) => Effect<Outcome, E, Communicator | RankEvents>`: it
 * builds its groups from `args.mapping` (`toConfig`), draws its inputs and weights from
 * `args.seed`, runs forward and backward, and returns named number arrays in global terms: each
 * rank returns what it holds of the global result (gathered where it holds a shard), so every
 * rank's outcome must equal the one-rank outcome. Mappings are drawn by fast-check, which
 * shrinks a failure to a small counterexample; the error names the mapping, the rank, the
 * array, the index and both values.
 */
import * as Effect from "effect/Effect"
import fc from "fast-check"
import * as Backend from "../runtime/Backend.js"
import * as ChooseBackend from "../runtime/ChooseBackend.js"
import * as RankProgram from "../runtime/RankProgram.js"
import * as Mappings from "./Mappings.js"
import * as Runs from "./Runs.js"

/**
 * What every rank receives: the mapping and the seed of the inputs.
 * @category models
 */
export interface RankCase {
  readonly mapping: Mappings.MappingArgs
  readonly seed: number
}

/**
 * What a rank program returns: named arrays (outputs, gradients) in global terms.
 * @category models
 */
export type Outcome = Readonly<Record<string, ReadonlyArray<number>>>

/**
 * How to run the check (fast-check runs and seed: RunOptions; 20 runs by default).
 * @category models
 */
export interface Options extends Runs.RunOptions {
  /** The module holding the program (pass `import.meta.url` from the module itself). */
  readonly module: string | URL
  /** The program's export name. */
  readonly export: string
  /** The mappings to try (default: Mappings.mappings() up to 8 ranks). */
  readonly mappings?: fc.Arbitrary<Mappings.MappingArgs> | undefined
  /** The backend the runs use: local fibers (default), worker threads, or either without
   * copies (-zero-copy). MPI and NCCL run one rank per process: run the check under a launcher there. */
  readonly backend?: ChooseBackend.InProcessName | undefined
  /** |parallel - one rank| <= absolute + relative * |one rank|: defaults 1e-6 and 1e-5, for
   * float32 (tensors' default dtype; sums in another order round differently); float64
   * programs can ask for 1e-12. */
  readonly absolute?: number | undefined
  readonly relative?: number | undefined
}

/** The one-rank mapping every case is compared with. */
const oneRank: Mappings.MappingArgs = { world: 1, tp: 1, cp: 1, pp: 1, ep: 1, etp: 1, order: "tp-cp-ep-dp-pp" }

/**
 * Runs the program on every rank of `mapping` and returns each rank's outcome.
 * @category constructors
 */
export const runMapping = (options: Options, mapping: Mappings.MappingArgs, seed: number): Promise<Array<Outcome>> => {
  const args: RankCase = { mapping, seed }
  return Effect.runPromise(
    Effect.provide(
      Backend.run<Outcome>({ world: mapping.world, program: RankProgram.make(options.module, options.export, args) }),
      ChooseBackend.layer(options.backend ?? "local"),
    ),
  )
}

/** The first difference between one rank's outcome and the reference, in words, or undefined. */
const difference = (outcome: Outcome, reference: Outcome, absolute: number, relative: number): string | undefined => {
  const names = Object.keys(reference).sort()
  const got = Object.keys(outcome).sort()
  if (names.join() !== got.join()) return `returned the arrays [${got.join(", ")}], one rank [${names.join(", ")}]`
  for (const name of names) {
    const a = outcome[name] as ReadonlyArray<number>
    const b = reference[name] as ReadonlyArray<number>
    if (a.length !== b.length) return `${name} has ${a.length} values, ${b.length} on one rank`
    for (let i = 0; i < b.length; i++) {
      const x = a[i] as number
      const y = b[i] as number
      if (!(Math.abs(x - y) <= absolute + relative * Math.abs(y))) return `${name}[${i}] is ${x}, ${y} on one rank (difference ${Math.abs(x - y)})`
    }
  }
  return undefined
}

/**
 * Checks the program under mappings drawn from `options.mappings` against one rank; resolves
 * when every case agrees, rejects with fast-check's report (the shrunk mapping and seed, and
 * which rank and array differ) when one does not.
 * @category constructors
 */
export const check = (options: Options): Promise<void> => {
  const absolute = options.absolute ?? 1e-6
  const relative = options.relative ?? 1e-5
  return fc.assert(
    fc.asyncProperty(options.mappings ?? Mappings.mappings(), fc.integer({ min: 1, max: 1_000_000 }), async (mapping, seed) => {
      const [reference] = await runMapping(options, oneRank, seed)
      const outcomes = await runMapping(options, mapping, seed)
      outcomes.forEach((outcome, rank) => {
        const why = difference(outcome, reference as Outcome, absolute, relative)
        if (why !== undefined) throw new Error(`${Mappings.describe(mapping)}, seed ${seed}: rank ${rank} ${why}`)
      })
    }),
    Runs.parameters(options, 20),
  )
}
