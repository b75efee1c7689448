/**
 * pleat/runtime: jobs and backends (local fibers, worker threads, MPI processes) as Layers,
 * rank programs as data, logging and traces.
 */
export * as Backend from "./Backend.js"
export * as ChooseBackend from "./ChooseBackend.js"
export * as Job from "./Job.js"
export * as JobError from "./JobError.js"
export * as LocalBackend from "./LocalBackend.js"
export * as Log from "./Log.js"
export * as MpiBackend from "./MpiBackend.js"
export * as RankEvents from "./RankEvents.js"
export * as RankProgram from "./RankProgram.js"
export * as ThreadsBackend from "./ThreadsBackend.js"
export * as Trace from "./Trace.js"
