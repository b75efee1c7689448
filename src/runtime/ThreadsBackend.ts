/**
 * ThreadsBackend: the Layer whose ranks are worker threads of this process, moving collective
 * data through SharedArrayBuffers (ThreadsJob).
 *
 * Every worker runs RankHost's `host` export with the rank program as data; the host imports
 * the program's module while the worker loads, then runs it exactly as the local backend does.
 * Events posted by the workers reach the job's listener as they come. `copy: false` is the
 * zero-copy mode (tensors in SharedArrayBuffers are read in place). `workers` caps the worker
 * threads (ThreadsJob: default one per rank up to the cores; a job of fewer ranks uses fewer).
 */
import * as Layer from "effect/Layer"
import { Backend, type JobSpec } from "./Backend.js"
import * as RankEvents from "./RankEvents.js"
import * as RankHost from "./RankHost.js"
import * as ThreadsJob from "./ThreadsJob.js"

const runJob = (spec: JobSpec, copy: boolean, workers: number | undefined) => {
  const deliver = RankEvents.deliver(spec.listener ?? {})
  const host = RankHost.hostOf(RankHost.argsFor(spec.program, spec.listener ?? {}))
  return ThreadsJob.run({
    world: spec.world,
    module: host.module,
    export: host.export,
    args: host.args,
    copy,
    ...(workers === undefined ? {} : { workers: Math.min(workers, spec.world) }),
    onEvent: (rank, event) => deliver(rank, event as RankEvents.RankEvent),
    ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
  })
}

/**
 * The threads backend as a Layer.
 * @category layers
 */
export const layer = (options: { readonly copy?: boolean; readonly workers?: number } = {}): Layer.Layer<Backend> =>
  Layer.succeed(Backend, { name: options.copy === false ? "threads-zero-copy" : "threads", run: (spec) => runJob(spec, options.copy !== false, options.workers) })
