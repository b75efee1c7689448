/**
 * Job: what a plan is asked for (the model, the cluster, the GPUs, the batch), one mapping it
 * weighs, and what it predicts for that mapping.
 */
import * as ModelConfig from "../train/ModelConfig.js"
import type * as Cluster from "./Cluster.js"

/**
 * Compute precision of the GEMMs: bf16, or fp8 (delayed scaling, bf16 elsewhere).
 * @category models
 */
export type Precision = "bf16" | "fp8"

/**
 * Activation recomputation: none, selective (the SwiGLU activations and norms), or full (each
 * layer keeps only its input and runs its forward again in the backward).
 * @category models
 */
export type Recompute = "none" | "selective" | "full"

/**
 * The job a plan is for.
 * @category models
 */
export interface Job {
  readonly modelName: string
  readonly model: ModelConfig.ModelConfig
  readonly cluster: Cluster.Cluster
  readonly gpus: number
  readonly seq: number
  readonly globalBatch: number
  readonly precision: Precision
  /**
   * The busiest expert-parallel rank's routed tokens over the mean rank's, by EP size, from a
   * recorded routing (ExpertLoad); absent: balanced routing (the compute and traffic at 1, the
   * activations at the calibration's dropless margin).
   */
  readonly expertLoad?: ((ep: number) => number) | undefined
  /**
   * The distributed optimizer's instances (hybrid sharding, Megatron's
   * --num-distributed-optimizer-instances): each gradient group (dp x cp, edp) split into this
   * many slices of consecutive members, the state sharded within a slice and replicated across;
   * absent or 1: one instance, sharded over the whole group.
   */
  readonly optimizerInstances?: number | undefined
}

/**
 * One mapping and schedule: the five degrees with etp, the derived dp and edp, vpp (1: no
 * interleaving), the order string, the micro-batch and the recomputation.
 * @category models
 */
export interface Mapping {
  readonly tp: number
  readonly cp: number
  readonly pp: number
  readonly vpp: number
  readonly ep: number
  readonly etp: number
  readonly dp: number
  readonly edp: number
  readonly order: string
  readonly microBatch: number
  readonly recompute: Recompute
  /** Layers of the first and last pp rank where pp does not divide the layers (StageLayers.unevenEnds); absent: equal stages. */
  readonly firstStageLayers?: number | undefined
  readonly lastStageLayers?: number | undefined
}

/**
 * Memory per GPU of the fullest rank (the first pipeline stage, or the last where the logits
 * make it fuller), bytes.
 * @category models
 */
export interface Memory {
  readonly weights: number
  readonly gradients: number
  readonly optimizer: number
  readonly activations: number
  readonly reserved: number
  readonly total: number
}

/**
 * Seconds of one step by term; they add up to the step. Compute and communication terms are
 * those of the slowest stage over all micro-batches; `bubble` is the pipeline's idle time.
 * @category models
 */
export interface Breakdown {
  readonly gemm: number
  readonly attention: number
  readonly elementwise: number
  readonly fixed: number
  readonly recompute: number
  readonly tp: number
  readonly cp: number
  readonly ep: number
  readonly etp: number
  readonly pp: number
  readonly bubble: number
  readonly dp: number
  readonly optimizer: number
}

/**
 * A mapping with its prediction.
 * @category models
 */
export interface Prediction {
  readonly mapping: Mapping
  readonly memory: Memory
  readonly stepSeconds: number
  /** Model FLOPs per second per GPU over the bf16 peak (a fraction). */
  readonly mfu: number
  readonly breakdown: Breakdown
}

/**
 * Micro-batches per step on each pipeline.
 * @category mapping
 */
export const microBatches = (job: Job, m: Mapping): number => ModelConfig.microBatches({ microBatch: m.microBatch, globalBatch: job.globalBatch }, m.dp)
