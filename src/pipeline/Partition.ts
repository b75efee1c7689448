/**
 * Partition: which layers each pipeline rank holds, and how the stages chain together.
 *
 * With pp ranks and vpp model chunks per rank the model is cut into pp*vpp global stages.
 * Chunks are assigned round-robin (semantics.md 3.4): chunk v of pp rank p is global stage
 * v*pp + p, so rank p holds stages p, p+pp, p+2*pp, ... With 16 layers, pp=4, vpp=2 rank 0 holds
 * layers [0,2) and [8,10) (the reference's 1-based "[1,2] and [9,10]"). Without interleaving
 * (vpp = 1) the global stage is the pp rank.
 *
 * The stages hold equal numbers of layers, unless the first or the last pp rank is given its own
 * count (Megatron-Core's num_layers_in_first_pipeline_stage / num_layers_in_last_pipeline_stage,
 * for layer counts pp does not divide, or lighter ends: the embedding and the loss): rank 0 then
 * holds `firstStageLayers` layers, vpp chunks of firstStageLayers/vpp each, rank pp-1 likewise
 * `lastStageLayers`, and the other ranks share the rest equally, every chunk of them
 * (layers - first - last) / (vpp * middle ranks). Each round v of chunks (stages v*pp .. v*pp +
 * pp - 1) holds the same layer counts, so the layers run in stage order. The first and last
 * counts may be 0 (a stage of the embedding, or of the output layer and loss, alone); a middle
 * rank holds at least one layer a chunk. A custom layout (Megatron-Core's
 * --pipeline-model-parallel-layout, PipelineLayout) gives every global stage its own count, 0
 * included: a stage without layers passes its activations on.
 *
 * Activations flow stage s -> s+1, so the input of rank 0's chunk v > 0 comes from rank pp-1's
 * chunk v-1: the pipeline is a ring of pp ranks walked vpp times. The schedules and the checker
 * use only the stage topology (`Stages`); the layer ranges need the layer count too.
 */
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"
import type * as ParallelConfig from "../mapping/ParallelConfig.js"

/**
 * The stage topology: pp ranks, vpp model chunks each.
 * @category models
 */
export interface Stages {
  readonly pp: number
  readonly vpp: number
}

/**
 * A validated layer partition.
 * @category models
 */
export interface Partition extends Stages {
  readonly layers: number
  /** pp * vpp. */
  readonly stages: number
  /** The first layer of each global stage, and `layers` last (stages + 1 entries, non-decreasing). */
  readonly starts: ReadonlyArray<number>
}

/**
 * Where a global stage lives: its index, the pp rank and the model chunk on that rank.
 * @category models
 */
export interface Place {
  readonly stage: number
  readonly pp: number
  readonly chunk: number
}

/**
 * A half-open range of 0-based layer indices [start, end).
 * @category models
 */
export interface LayerRange {
  readonly start: number
  readonly end: number
}

/**
 * What a user writes: the layer count, pp, and optionally vpp (default 1).
 * @category models
 */
export interface PartitionInput {
  readonly layers: number
  readonly pp: number
  readonly vpp?: number | undefined
  /** Layers on pp rank 0, over its vpp chunks (none: an equal share). */
  readonly firstStageLayers?: number | undefined
  /** Layers on pp rank pp-1, over its vpp chunks (none: an equal share). */
  readonly lastStageLayers?: number | undefined
  /** Layers of every global stage, in stage order (a custom layout: PipelineLayout); none with the counts above. */
  readonly stageLayers?: ReadonlyArray<number> | undefined
}

/**
 * Checks the input: positive integers; without first or last counts, layers divisible by
 * pp*vpp; with them, pp > 1, each divisible by vpp, and the rest a positive multiple of vpp times
 * the middle ranks (or none, when no rank is left in the middle).
 * @category constructors
 */
export const validate = (input: PartitionInput): Result.Result<Partition, ConfigError.ConfigError> =>
  Result.gen(function* () {
    const layers = yield* positive("layers", input.layers)
    const pp = yield* positive("pp", input.pp)
    const vpp = yield* positive("vpp", input.vpp ?? 1)
    const stages = pp * vpp
    const { firstStageLayers: first, lastStageLayers: last } = input
    if (input.stageLayers !== undefined) return yield* custom(input.stageLayers, layers, pp, vpp, first ?? last)
    if (first === undefined && last === undefined) {
      if (layers % stages !== 0) {
        const below = layers - (layers % stages)
        const above = below + stages
        const counts = below > 0 ? `${below} or ${above}` : `${above}`
        const uneven = pp > 1 ? ", or give the first or last stage its own count (--first-stage-layers, --last-stage-layers)" : ""
        return yield* Result.fail(
          ConfigError.make(
            "layers",
            layers,
            `is not divisible by pp*vpp = ${pp}*${vpp} = ${stages}, so the ${stages} pipeline stages cannot hold equal numbers of layers`,
            `use ${counts} layers (a multiple of ${stages}), or choose pp and vpp whose product divides ${layers}${uneven}`,
          ),
        )
      }
      return { layers, pp, vpp, stages, starts: startsOf(layers, pp, vpp, layers / stages, layers / stages, layers / stages) }
    }
    for (const [field, count] of [
      ["first-stage-layers", first],
      ["last-stage-layers", last],
    ] as const) {
      if (count === undefined) continue
      if (!Number.isSafeInteger(count) || count < 0) return yield* Result.fail(ConfigError.make(field, count, "is not a non-negative integer", `set --${field} to 0, 1, 2, ...`))
      if (pp === 1) return yield* Result.fail(ConfigError.make(field, count, "needs pipeline parallelism but pp is 1", `set --pp to 2 or more, or leave out --${field}`))
      if (count % vpp !== 0)
        return yield* Result.fail(
          ConfigError.make(
            field,
            count,
            `is not divisible by vpp = ${vpp}, so rank ${field === "first-stage-layers" ? 0 : pp - 1}'s ${vpp} chunks cannot hold equal numbers of layers`,
            `use a multiple of ${vpp}`,
          ),
        )
    }
    const middleRanks = pp - (first === undefined ? 0 : 1) - (last === undefined ? 0 : 1)
    const rest = layers - (first ?? 0) - (last ?? 0)
    const given = [first === undefined ? "" : `first ${first}`, last === undefined ? "" : `last ${last}`].filter((x) => x !== "").join(" + ")
    const field = first === undefined ? "last-stage-layers" : "first-stage-layers"
    const value = first ?? last
    if (rest < 0)
      return yield* Result.fail(
        ConfigError.make(
          field,
          value,
          `gives the end stages more than the model's ${layers} layers (${given})`,
          `give the first and last stages at most ${layers} layers together`,
        ),
      )
    if (middleRanks === 0 && rest !== 0)
      return yield* Result.fail(
        ConfigError.make(field, value, `with pp 2 leaves ${rest} of the ${layers} layers to no stage (${given})`, `make the first and last stage layers add up to ${layers}`),
      )
    const chunks = middleRanks * vpp
    if (middleRanks > 0 && (rest < chunks || rest % chunks !== 0)) {
      const fit = rest < chunks ? `at least ${chunks}` : `a multiple of ${chunks}`
      return yield* Result.fail(
        ConfigError.make(
          field,
          value,
          `leaves ${rest} of the ${layers} layers (${[layers, first, last].filter((x) => x !== undefined).join(" - ")}) to ${middleRanks} middle rank${middleRanks === 1 ? "" : "s"} of ${vpp} chunk${vpp === 1 ? "" : "s"}, not ${fit} (one or more layers a chunk, equal)`,
          `choose the first and last stage layers so that the rest is ${fit}`,
        ),
      )
    }
    const middle = middleRanks === 0 ? 0 : rest / chunks
    return { layers, pp, vpp, stages, starts: startsOf(layers, pp, vpp, first === undefined ? middle : first / vpp, middle, last === undefined ? middle : last / vpp) }
  })

/**
 * The refusal of a layout (`written`) given beside the first and last stages' own counts.
 * @category constructors
 */
export const layoutWithEnds = (written: string): ConfigError.ConfigError =>
  ConfigError.make(
    "pipeline-layout",
    written,
    "gives every stage its layers, and so do --first-stage-layers / --last-stage-layers",
    "use the layout alone: drop --first-stage-layers and --last-stage-layers",
  )

/** The partition of a custom layout's stage counts (PipelineLayout), checked against the model and the stages. */
const custom = (counts: ReadonlyArray<number>, layers: number, pp: number, vpp: number, end: number | undefined): Result.Result<Partition, ConfigError.ConfigError> => {
  const field = "pipeline-layout"
  const written = counts.join("|")
  if (end !== undefined) return Result.fail(layoutWithEnds(written))
  if (counts.length !== pp * vpp)
    return Result.fail(
      ConfigError.make(
        field,
        written,
        `has ${counts.length} stages, where pp x vpp is ${pp} x ${vpp} = ${pp * vpp}`,
        `write ${pp * vpp} stages, or leave out --vpp (the layout sets it)`,
      ),
    )
  if (counts.some((c) => !Number.isSafeInteger(c) || c < 0))
    return Result.fail(ConfigError.make(field, written, "has a stage of no whole number of layers", "give each stage 0, 1, 2, ... layers"))
  const total = counts.reduce((a, c) => a + c, 0)
  if (total !== layers) return Result.fail(ConfigError.make(field, written, `holds ${total} layers, where the model has ${layers}`, `give the stages ${layers} layers in all`))
  const starts = [0]
  for (const c of counts) starts.push((starts[starts.length - 1] as number) + c)
  return Result.succeed({ layers, pp, vpp, stages: pp * vpp, starts })
}

/** Stage starts when every chunk of rank 0 holds `first` layers, of rank pp-1 `last`, of the others `middle`. */
const startsOf = (layers: number, pp: number, vpp: number, first: number, middle: number, last: number): Array<number> => {
  const starts = [0]
  for (let stage = 0; stage < pp * vpp; stage++) {
    const p = stage % pp
    starts.push((starts[stage] as number) + (p === 0 ? first : p === pp - 1 ? last : middle))
  }
  if (starts[pp * vpp] !== layers) throw new Error(`Partition: stages hold ${starts[pp * vpp]} layers, not ${layers}`)
  return starts
}

/**
 * The partition input of `layers` under a parallel configuration (its pp, vpp and end counts).
 * @category constructors
 */
export const inputOf = (layers: number, p: Pick<ParallelConfig.ParallelConfig, "sizes" | "vpp" | "firstStageLayers" | "lastStageLayers" | "stageLayers">): PartitionInput => ({
  layers,
  pp: p.sizes.pp,
  vpp: p.vpp,
  firstStageLayers: p.firstStageLayers,
  lastStageLayers: p.lastStageLayers,
  stageLayers: p.stageLayers,
})

/**
 * Validates or throws the ConfigError (for callers that know their input is good).
 * @category constructors
 */
export const make = (input: PartitionInput): Partition => {
  const r = validate(input)
  if (Result.isFailure(r)) throw r.failure
  return r.success
}

/**
 * The number of global stages, pp * vpp.
 * @category topology
 */
export const stageCount = (s: Stages): number => s.pp * s.vpp

/**
 * The global stage of chunk `chunk` on pp rank `pp`: chunk * pp_size + pp.
 * @category topology
 */
export const globalStage = (s: Stages, pp: number, chunk: number): number => {
  checkIndex("pp rank", pp, s.pp)
  checkIndex("chunk", chunk, s.vpp)
  return chunk * s.pp + pp
}

/**
 * The pp rank and chunk that hold a global stage.
 * @category topology
 */
export const holder = (s: Stages, stage: number): Place => {
  checkIndex("stage", stage, stageCount(s))
  return { stage, pp: stage % s.pp, chunk: Math.floor(stage / s.pp) }
}

/**
 * Whether a global stage is the first of the whole model (it reads the data).
 * @category topology
 */
export const isFirstStage = (_s: Stages, stage: number): boolean => stage === 0

/**
 * Whether a global stage is the last of the whole model (it computes the loss).
 * @category topology
 */
export const isLastStage = (s: Stages, stage: number): boolean => stage === stageCount(s) - 1

/**
 * The stage that receives this stage's activations, or undefined after the last stage.
 * @category topology
 */
export const next = (s: Stages, stage: number): Place | undefined => (isLastStage(s, stage) ? undefined : holder(s, stage + 1))

/**
 * The stage this stage receives its activations from, or undefined before the first stage.
 * @category topology
 */
export const prev = (s: Stages, stage: number): Place | undefined => (stage === 0 ? undefined : holder(s, stage - 1))

/**
 * The layers of chunk `chunk` on pp rank `pp`.
 * @category layers
 */
export const layersOf = (part: Partition, pp: number, chunk: number): LayerRange => {
  const stage = globalStage(part, pp, chunk)
  return { start: part.starts[stage] as number, end: part.starts[stage + 1] as number }
}

/**
 * The layers pp rank `pp` holds, over its chunks.
 * @category layers
 */
export const layersOnRank = (part: Partition, pp: number): number => {
  let n = 0
  for (let v = 0; v < part.vpp; v++) {
    const r = layersOf(part, pp, v)
    n += r.end - r.start
  }
  return n
}

/**
 * The global stage that holds a 0-based layer (use `holder` for its pp rank and chunk).
 * @category layers
 */
export const stageOf = (part: Partition, layer: number): number => {
  checkIndex("layer", layer, part.layers)
  // The last stage starting at or before the layer that holds any (empty stages start where the next does).
  let stage = part.stages - 1
  while ((part.starts[stage] as number) > layer || part.starts[stage] === part.starts[stage + 1]) stage--
  return stage
}

const positive = (field: string, value: number): Result.Result<number, ConfigError.ConfigError> =>
  Number.isSafeInteger(value) && value >= 1 ? Result.succeed(value) : Result.fail(ConfigError.make(field, value, "is not a positive integer", `set ${field} to 1, 2, 3, ...`))

/** Indices out of range are programming errors, not configuration errors. */
const checkIndex = (what: string, i: number, size: number): void => {
  if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`${what} ${i} is outside [0, ${size})`)
}
