/**
 * Stage: the bridge from the trainer to the model for one chunk forward: this rank's tokens
 * of the micro-batch and the model context, then the model's forward (its ModelDefinition;
 * the built-in one is model/Mixtral) does the rest.
 *
 * Rows are this rank's tokens: the micro-batch's sequences at this cp rank's positions
 * (load-balanced chunks), batch-major; the model splits them over tp under sequence
 * parallelism, which is on whenever tp > 1 (MoE with tp > 1 needs it, semantics.md 2.4.4).
 */
import * as ContextParallel from "../attention/ContextParallel.js"
import type * as SelfAttention from "../attention/SelfAttention.js"
import * as ModelContext from "../model/ModelContext.js"
import * as ModelLayouts from "../model/ModelLayouts.js"
import * as MultiTokenPrediction from "../model/MultiTokenPrediction.js"
import type * as MoeRunState from "../moe/MoeRunState.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as Data from "./Data.js"
import type * as ModelConfig from "./ModelConfig.js"
import type * as ModelDefinition from "./ModelDefinition.js"
import type * as RecomputeModules from "../model/RecomputeModules.js"

/**
 * The groups a rank trains with.
 * @category models
 */
export type TrainGroups = ModelContext.Groups

/**
 * What a chunk forward needs to know about its rank and step.
 * @category models
 */
export interface StageContext {
  readonly model: ModelConfig.ModelConfig
  readonly microBatch: number
  readonly groups: TrainGroups
  readonly cpRank: number
  /** M * dp: micro-batches in the global batch. */
  readonly microBatchesPerStep: number
  readonly auxLossCoeff: number
  /** This rank's MoE state across the global batch (global_aux). */
  readonly moeState?: MoeRunState.MoeRunState | undefined
  /** Parameters by name (leaves on the micro-batch's tape). */
  readonly param: (name: string) => Tensor.Tensor
  /** What the backward recomputes (ModelContext.recompute, recomputeModules). */
  readonly recompute?: "none" | "selective" | "full" | undefined
  readonly recomputeModules?: ReadonlyArray<RecomputeModules.RecomputeModule> | undefined
  /** The model's chunk forward (its ModelDefinition). */
  readonly forward: ModelDefinition.Forward
  /** A forward of an evaluation (ModelContext.evaluating). */
  readonly evaluating?: boolean | undefined
  /** The step's routing replay or recording (ModelContext.routing; RoutingSites). */
  readonly routing?: ModelContext.RoutingSite | undefined
}

/**
 * The rows of this cp rank in the micro-batch (before any tp split).
 */
const cpRows = (c: StageContext): Int32Array => {
  const positions = ContextParallel.positions(c.model.seq, c.groups.cp.ranks.length, c.cpRank)
  const rows: Array<number> = []
  for (let b = 0; b < c.microBatch; b++) for (const p of positions) rows.push(b * c.model.seq + p)
  return Int32Array.from(rows)
}

/**
 * Sequence parallelism is on whenever tp > 1.
 */
const sequenceParallel = (groups: TrainGroups): boolean => groups.tp.ranks.length > 1

/**
 * The layout of the hidden rows between stages (what the pipeline links carry).
 * @category mapping
 */
export const hiddenLayout = (model: ModelConfig.ModelConfig, microBatch: number, groups: TrainGroups) =>
  ModelLayouts.hiddenLayout({ sizes: model, microBatch, groups, sequenceParallel: sequenceParallel(groups) })

/**
 * The model's view of this rank and micro-batch (`documents`: its documents at this rank's rows).
 */
const modelContext = (
  c: StageContext,
  documents: SelfAttention.Documents | undefined,
  data: Data.MicroBatch,
  tokenPlaces: Float64Array | undefined,
  tokenIds: Int32Array | undefined,
): ModelContext.ModelContext => ({
  sizes: c.model,
  microBatch: c.microBatch,
  groups: c.groups,
  cpRank: c.cpRank,
  sequenceParallel: sequenceParallel(c.groups),
  microBatchesPerStep: c.microBatchesPerStep,
  auxLossCoeff: c.auxLossCoeff,
  moeState: c.moeState,
  param: c.param,
  recompute: c.recompute,
  recomputeModules: c.recomputeModules,
  documents,
  ...(c.evaluating === true ? { evaluating: true } : {}),
  ...(tokenPlaces === undefined ? {} : { tokenPlaces }),
  ...(tokenIds === undefined ? {} : { tokenIds }),
  ...(data.firstSequence === undefined ? {} : { firstSequence: data.firstSequence }),
  ...(c.routing === undefined ? {} : { routing: c.routing }),
})

/**
 * Runs layers [first, last) on `input` (hidden rows) or on the micro-batch's token ids.
 * @category combinators
 */
export const forward = (c: StageContext, layers: readonly [number, number], input: Tensor.Tensor | undefined, data: Data.MicroBatch, isFirst: boolean, isLast: boolean) => {
  const rows = cpRows(c)
  const at = (t: Int32Array) => Int32Array.from(rows, (r) => t[r] as number)
  // Each loss is a mean over the micro-batch's kept labels, which the cp ranks count alike (or
  // over the step's, with --calculate-per-token-loss).
  const pick = (t: ModelContext.Tokens, k: number): ModelContext.Tokens => ({
    ids: at(t.ids),
    targets: at(t.targets),
    labels: t.labels ?? ModelContext.keptTargets(t.targets),
    stepLabels: data.stepLabels?.(k),
  })
  const whole = { ids: data.tokens, targets: data.targets }
  // Multi-token prediction's shifted tokens come from the whole sequences, then this cp rank's rows.
  const mine = pick(whole, 0)
  const tokens = { shifted: (k: number) => pick(MultiTokenPrediction.shifted(whole, c.model.seq, k), k), ...mine }
  const marks = data.documents
  const documents = marks === undefined ? undefined : { firstKeys: marks.firstKeys && at(marks.firstKeys), positions: marks.positions && at(marks.positions) }
  // The rows' places in the data stream, for the router's input jitter and routing replay only (a forward's allocation otherwise).
  const first = data.firstSequence
  const seq = c.model.seq
  const needed = c.model.moe?.inputJitterEps !== undefined || c.routing !== undefined
  const places = first === undefined || !needed ? undefined : Float64Array.from(rows, (r) => (first + Math.floor(r / seq)) * seq + (r % seq))
  // Hash-routed layers route the rows by their token ids.
  const ids = c.model.moe?.hashLayers === undefined ? undefined : mine.ids
  return c.forward(modelContext(c, documents, data, places, ids), { layers, isFirst, isLast }, input, tokens)
}
