/**
 * pleat: the public API, one namespace per layer of the framework.
 *
 *   import { mapping, runtime, train } from "pleat"
 *   const config = mapping.ParallelConfig.make({ world: 16, tp: 2, cp: 2, pp: 2, ep: 4, etp: 1 })
 *
 * Property-testing tools for users' own models: `pleat/testing`. Modules not listed here are
 * internal and may change without notice.
 *
 * @module pleat
 */
export * as attention from "../attention/index.js"
export * as comm from "../comm/index.js"
export * as dataflow from "../dataflow/index.js"
export * as errors from "../errors/index.js"
export * as mapping from "../mapping/index.js"
export * as model from "../model/index.js"
export * as moe from "../moe/index.js"
export * as pipeline from "../pipeline/index.js"
export * as runtime from "../runtime/index.js"
export * as tensor from "../tensor/index.js"
export * as train from "../train/index.js"
