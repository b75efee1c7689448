/**
 * Partition: which layers each pipeline rank holds, and how the stages chain together.
 *
 * With pp ranks and vpp model chunks per rank the model is cut into pp*vpp equal global stages.
 * Chunks are assigned round-robin (semantics.md 3.4): chunk v of pp rank p is global stage
 * v*pp + p, so rank p holds stages p, p+pp, p+2*pp, ... With 16 layers, pp=4, vpp=2 rank 0 holds
 * layers [0,2) and [8,10) (the reference's 1-based "[1,2] and [9,10]"). Without interleaving
 * (vpp = 1) the global stage is the pp rank.
 *
 * Activations flow stage s -> s+1, so the input of rank 0's chunk v > 0 comes from rank pp-1's
 * chunk v-1: the pipeline is a ring of pp ranks walked vpp times. The schedules and the checker
 * use only the stage topology (`Stages`); the layer ranges need the layer count too.
 */
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"

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
  /** layers / stages. */
  readonly layersPerStage: number
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
}

/**
 * Checks the input: positive integers, and layers divisible by pp*vpp.
 * @category constructors
 */
export const validate = (input: PartitionInput): Result.Result<Partition, ConfigError.ConfigError> =>
  Result.gen(function* () {
    const layers = yield* positive("layers", input.layers)
    const pp = yield* positive("pp", input.pp)
    const vpp = yield* positive("vpp", input.vpp ?? 1)
    const stages = pp * vpp
    if (layers % stages !== 0) {
      const below = layers - (layers % stages)
      const above = below + stages
      const counts = below > 0 ? `${below} or ${above}` : `${above}`
      return yield* Result.fail(
        ConfigError.make(
          "layers",
          layers,
          `is not divisible by pp*vpp = ${pp}*${vpp} = ${stages}, so the ${stages} pipeline stages cannot hold equal numbers of layers`,
          `use ${counts} layers (a multiple of ${stages}), or choose pp and vpp whose product divides ${layers}`,
        ),
      )
    }
    return { layers, pp, vpp, stages, layersPerStage: layers / stages }
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
  return { start: stage * part.layersPerStage, end: (stage + 1) * part.layersPerStage }
}

/**
 * The global stage that holds a 0-based layer (use `holder` for its pp rank and chunk).
 * @category layers
 */
export const stageOf = (part: Partition, layer: number): number => {
  checkIndex("layer", layer, part.layers)
  return Math.floor(layer / part.layersPerStage)
}

const positive = (field: string, value: number): Result.Result<number, ConfigError.ConfigError> =>
  Number.isSafeInteger(value) && value >= 1 ? Result.succeed(value) : Result.fail(ConfigError.make(field, value, "is not a positive integer", `set ${field} to 1, 2, 3, ...`))

/** Indices out of range are programming errors, not configuration errors. */
const checkIndex = (what: string, i: number, size: number): void => {
  if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`${what} ${i} is outside [0, ${size})`)
}
