/**
 * pleat/train: the training job (Train), the model and batch configuration and its presets,
 * parameters, optimizers (AdamW, the distributed optimizer), checkpoints and the training data.
 */
export * as BuiltinModels from "./BuiltinModels.js"
export * as Checkpoint from "./Checkpoint.js"
export * as Data from "./Data.js"
export * as DistributedOptimizer from "./DistributedOptimizer.js"
export * as DistributedSlices from "./DistributedSlices.js"
export * as Fault from "./Fault.js"
export * as Lockstep from "./Lockstep.js"
export * as ModelConfig from "./ModelConfig.js"
export * as ModelDefinition from "./ModelDefinition.js"
export * as ModelPresets from "./ModelPresets.js"
export * as Optimizer from "./Optimizer.js"
export * as Params from "./Params.js"
export * as RankMemory from "./RankMemory.js"
export * as RankParams from "./RankParams.js"
export * as RankTrainer from "./RankTrainer.js"
export * as SaveFallback from "./SaveFallback.js"
export * as StepReport from "./StepReport.js"
export * as TokenFile from "./TokenFile.js"
export * as Train from "./Train.js"
export * as WindowOrder from "./WindowOrder.js"
