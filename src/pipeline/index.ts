/**
 * pleat/pipeline: pipeline-parallel schedules as data (pure code, no I/O, no services).
 *
 * Partition cuts the layers into stages; Schedule builds each pp rank's action list the way the
 * reference schedules run; Check proves a set of lists deadlock-free and correctly paired;
 * Simulate times them and measures the bubble.
 */
export * as Action from "./Action.js"
export * as Check from "./Check.js"
export * as Partition from "./Partition.js"
export * as Plan from "./Plan.js"
export * as Schedule from "./Schedule.js"
export * as Simulate from "./Simulate.js"
