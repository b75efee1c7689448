/**
 * Evaluation: the loss of the model as it stands on held-out data (`--eval-data`), as Megatron's
 * evaluate and nanoGPT's estimate_loss report it: the language-model cross-entropy (no aux or
 * z loss) of `batches` global batches of a token file, forward passes only, no gradient and no
 * optimizer step.
 *
 * Each evaluation reads the same sequences, 0 .. batches * globalBatch - 1 of the file's stream
 * (WindowOrder under the run's seed; epoch 0 first), so its losses are comparable from one
 * evaluation to the next and equal under every mapping. A global batch runs the pipeline's
 * forward-only schedule (the interpreter's evaluation lists) over the training's micro-batches,
 * links and groups; each rank's share of a micro-batch's loss is its training share, so the shares
 * of all ranks sum to the batch's mean loss. The MoE layers route with the trained expert biases
 * but count into a state of their own, so no evaluation moves the training's global_aux counts or
 * bias updates.
 *
 * On a device the chunks compute there, as in training: from the weights the device optimizer
 * keeps (or their bf16 rounding, made for the evaluation), or uploads of the host's shards where
 * the optimizer runs on the host; the loss shares come to the host without blocking.
 */
import * as Effect from "effect/Effect"
import type { CommError } from "../comm/CommError.js"
import * as MoeRunState from "../moe/MoeRunState.js"
import type * as Device from "../tensor/Device.js"
import type * as GradAccumulator from "../tensor/GradAccumulator.js"
import type { Action } from "../pipeline/Action.js"
import type * as Partition from "../pipeline/Partition.js"
import * as Schedule from "../pipeline/Schedule.js"
import { hostValues } from "../tensor/ops/Transfer.js"
import * as StableWeights from "../tensor/StableWeights.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as ChunkRun from "./ChunkRun.js"
import type * as Data from "./Data.js"
import * as DistributedOptimizer from "./DistributedOptimizer.js"
import * as Interpreter from "./Interpreter.js"
import type * as PipelineLinks from "./PipelineLinks.js"
import type * as RankParams from "./RankParams.js"
import type * as Stage from "./Stage.js"
import type * as HeldOut from "./HeldOut.js"
import type * as TokenFile from "./TokenFile.js"

/**
 * What one rank's evaluation needs of its trainer.
 * @category models
 */
export interface EvaluationContext {
  readonly rank: number
  /** The run (TrainSetup): its precision, pipeline and held-out data. */
  readonly setup: {
    readonly precision?: "fp32" | "bf16" | undefined
    readonly evaluation?: HeldOut.EvaluationSetup | undefined
    readonly parallel: { readonly vpp?: number | undefined; readonly sizes: { readonly pp: number; readonly dp: number } }
  }
  readonly place: { readonly pp: number; readonly tp: number }
  /** The micro-batches of a rank's step. */
  readonly microBatches: number
  /** This rank's micro-batch `index` of global batch `step` of `file` (the trainer's, Data.microBatch). */
  readonly dataOf: (step: number, index: number, file: TokenFile.TokenFile) => Data.MicroBatch
  readonly links: PipelineLinks.PipelineLinks
  readonly chunks: ReadonlyArray<Partition.LayerRange>
  readonly isFirst: (chunk: number) => boolean
  readonly isLast: (chunk: number) => boolean
  readonly params: ReadonlyMap<string, RankParams.Held>
  /** The stage context with the MoE layers' state given. */
  readonly context: (param: (name: string) => Tensor.Tensor, moeState: MoeRunState.MoeRunState, evaluating: boolean) => Stage.StageContext
  readonly moeState: MoeRunState.MoeRunState
  /** The host's distributed optimizer, whose all-gathers a chunk awaits first (none where the device's runs it). */
  readonly distributed: DistributedOptimizer.DistributedOptimizer | undefined
  /** The device the chunks compute on (none: the host). */
  readonly device?: Device.Device | undefined
  /** On a device: the weights there as they stand (each evaluation's fresh map, shared by its micro-batches), and the gradient accumulators the leaves are bound to. */
  readonly deviceWeights?: Effect.Effect<Map<RankParams.Held, Tensor.Tensor>, CommError> | undefined
  readonly deviceGrads?: ((held: RankParams.Held) => GradAccumulator.Accumulator) | undefined
}

/**
 * This rank's share of the evaluation loss: the sum over its micro-batches of `batches` global
 * batches of its training share, divided by `batches` (the shares of all ranks sum to the loss),
 * and of each multi-token prediction depth's loss (from the depths' statistics, as the training
 * reports them); undefined when the run has no held-out data.
 * @category constructors
 */
export const of = (c: EvaluationContext) => (c.setup.evaluation === undefined ? undefined : evaluate(c, c.setup.evaluation))

const evaluate = (c: EvaluationContext, evaluation: HeldOut.EvaluationSetup) =>
  Effect.gen(function* () {
    // The trained biases and betas route; the counts go into a state nobody reads.
    const moeState = MoeRunState.copied(c.moeState)
    const bf16Copies = new Map<RankParams.Held, Tensor.Tensor>()
    const generation = StableWeights.nextGeneration()
    const deviceCopies = c.deviceWeights === undefined ? undefined : yield* c.deviceWeights
    const { parallel } = c.setup
    const actions = Schedule.make({ pp: parallel.sizes.pp, vpp: parallel.vpp, microBatches: c.microBatches, forwardOnly: true }).ranks[c.place.pp] as ReadonlyArray<Action>
    let share = 0
    // Each MTP depth's statistic (MultiTokenPrediction: each rank's part of the micro-batch's mean), summed.
    const mtp: Array<number> = []
    for (let batch = 0; batch < evaluation.batches; batch++) {
      const forward = (microBatch: number, chunk: number, received: Tensor.Tensor | undefined) =>
        Effect.gen(function* () {
          // The parameters as the last step's all-gathers left them (DistributedOptimizer).
          if (c.distributed !== undefined) yield* DistributedOptimizer.settle(c.distributed, chunk)
          const data = c.dataOf(batch, microBatch, evaluation.data)
          const { out, forwarded, release } = yield* ChunkRun.forward({
            rank: c.rank,
            microBatch,
            chunk,
            layers: c.chunks[chunk] as Partition.LayerRange,
            isFirst: c.isFirst(chunk),
            isLast: c.isLast(chunk),
            params: c.params,
            context: (param) => c.context(param, moeState, true),
            data,
            received,
            precision: c.setup.precision,
            bf16Copies,
            device: c.device,
            deviceCopies,
            deviceGrads: c.deviceGrads,
            generation,
          })
          if (out.loss !== undefined && c.place.tp === 0) share += (yield* hostValues(out.loss))[0] as number
          const depths = out.moeStats.flatMap((s) => s.terms.filter((t) => t.name === "mtp_loss").map((t) => t.value))
          depths.forEach((value, k) => (mtp[k] = (mtp[k] ?? 0) + value))
          release()
          return forwarded
        })
      yield* Interpreter.run(actions, { pp: c.place.pp, links: c.links, forwardOnly: true, isFirst: c.isFirst, isLast: c.isLast, forward })
    }
    StableWeights.retire(generation)
    // The statistics are means over the global batch's micro-batches, as the training's are.
    const perBatch = evaluation.batches * c.microBatches * parallel.sizes.dp
    return { share: share / evaluation.batches, mtp: mtp.map((m) => m / perBatch) } satisfies HeldOut.EvalShare
  })
