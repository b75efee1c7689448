/**
 * pleat/pipeline: pipeline schedules as data (1F1B, interleaved 1F1B), their checks, their
 * partition of layers into stages, and a simulator that runs them without a model.
 */
export * as Action from "./Action.js"
export * as Check from "./Check.js"
export * as Partition from "./Partition.js"
export * as Schedule from "./Schedule.js"
export * as Simulate from "./Simulate.js"
