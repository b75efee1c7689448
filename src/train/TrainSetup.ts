/**
 * TrainSetup: a training job as data, everything a rank needs to build its trainer
 * (RankTrainer.make): the mapping, the model and batch, seed, dtype and precision, optimizer,
 * recompute, the model definition, the device, the data and held-out data, and a span callback for
 * tracing (the only member that does not cross into workers).
 */
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import type * as Trace from "../runtime/Trace.js"
import type * as Device from "../tensor/Device.js"
import type * as DType from "../tensor/DType.js"
import type * as Documents from "./Documents.js"
import type * as HeldOut from "./HeldOut.js"
import type * as ModelConfig from "./ModelConfig.js"
import type * as ModelDefinition from "./ModelDefinition.js"
import type * as Optimizer from "./Optimizer.js"
import type * as Blend from "./Blend.js"
import type * as RecomputeModules from "../model/RecomputeModules.js"

/**
 * Everything a training job is made of.
 * @category models
 */
export interface TrainSetup {
  readonly parallel: ParallelConfig.ParallelConfig
  readonly model: ModelConfig.ModelConfig
  readonly batch: ModelConfig.BatchConfig
  readonly seed: number
  /** Megatron's initialisation at this standard deviation (InitMethod.withStd); pleat's own when absent. */
  readonly initMethodStd?: number | undefined
  readonly dtype: DType.DType
  readonly optimizer: Optimizer.OptimizerConfig
  readonly auxLossCoeff: number
  /** Shards AdamW's state over the ranks that hold the same parameters (DistributedOptimizer). */
  readonly distributedOptimizer?: boolean
  /**
   * With the distributed optimizer: how many instances each group's state is replicated over,
   * sharded within each (hybrid sharding, Megatron's --num-distributed-optimizer-instances;
   * mapping/InstanceSlices). Divides dp x cp and edp; 1 when absent.
   */
  readonly distributedOptimizerInstances?: number | undefined
  /** bf16: parameters and activations in bfloat16, fp32 master weights and state (fp32 default). */
  readonly precision?: Precision | undefined
  /** Activation recompute in the backward (none by default). */
  readonly recompute?: Recompute | undefined
  /** What selective recompute recomputes (RecomputeModules; its defaults when absent). */
  readonly recomputeModules?: ReadonlyArray<RecomputeModules.RecomputeModule> | undefined
  /** The model (ModelDefinition.Ref); the built-in Mixtral-like model when absent. */
  readonly definition?: ModelDefinition.Ref | undefined
  /**
   * The kind of device the ranks compute on (ChunkRun: weights uploaded once a step): `cpu` (the
   * default), `sim` (rank r on sim:r) or `cuda` (cuda:0, the GPU its process selected).
   */
  readonly device?: Device.Kind | undefined
  /** The token file or blend of them to train on (each checked by TokenFile.inspect); the synthetic language when absent. */
  readonly data?: Blend.Corpus | undefined
  /** What end-of-document tokens do (Documents: attention within documents, positions, the loss). */
  readonly documents?: Documents.Settings | undefined
  /** Each loss the mean over the step's tokens, not a mean of micro-batch means (--calculate-per-token-loss). */
  readonly perTokenLoss?: boolean | undefined
  /** Held-out data to evaluate on (Evaluation; on the ranks' device where they compute on one). */
  readonly evaluation?: HeldOut.EvaluationSetup | undefined
  /**
   * Routing replay and recording (RoutingFiles, semantics.md 2.1.10): `replay`, a directory whose
   * step files give every MoE layer's experts per token; `record`, a directory the driver writes
   * each step's routing into (RoutingSites collects it on the ranks).
   */
  readonly routing?: { readonly replay?: string | undefined; readonly record?: string | undefined } | undefined
  /** Receives a span for every forward, backward and wait, and one per step (tracing). */
  readonly span?: ((span: Trace.Span) => void) | undefined
}

/**
 * The training precision: fp32 (the setup's dtype throughout) or bf16 mixed precision.
 * @category models
 */
export type Precision = "fp32" | "bf16"

/**
 * What the backward recomputes instead of keeping: nothing, the modules of RecomputeModules
 * (selective; the expert MLPs by default), or whole layers.
 * @category models
 */
export type Recompute = "none" | "selective" | "full"
