/**
 * LocalBackend: the Layer whose ranks are fibers of this process over one heap (LocalFabric).
 *
 * It imports the rank program's module here and runs it on every rank through RankHost, with
 * Job.run's supervision. Each rank gets its own structured clone of the args, as a worker
 * would, so a program that runs here runs unchanged in workers. `copy: false` is the
 * zero-copy mode (contributions are read in place).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Backend, type JobSpec } from "./Backend.js"
import * as Job from "./Job.js"
import { RankFailed } from "./JobError.js"
import * as RankEvents from "./RankEvents.js"
import * as RankHost from "./RankHost.js"
import * as RankProgram from "./RankProgram.js"

const runJob = (spec: JobSpec, copy: boolean) =>
  Effect.gen(function* () {
    const args = RankHost.argsFor(spec.program, spec.listener ?? {})
    RankProgram.checkCloneable(spec.program)
    // As in workers: a module that fails to load fails the job as its first rank.
    yield* Effect.tryPromise({ try: () => RankHost.prepare(args), catch: (error) => new RankFailed({ rank: 0, cause: Cause.die(error) }) })
    const deliver = RankEvents.deliver(spec.listener ?? {})
    return yield* Job.run({ world: spec.world, backend: copy ? "local" : "local-zero-copy", ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }) }, (rank) =>
      RankHost.run(rank, structuredClone(args), (event) => deliver(rank, event)),
    )
  })

/**
 * The local backend as a Layer.
 * @category layers
 */
export const layer = (options: { readonly copy?: boolean } = {}): Layer.Layer<Backend> =>
  Layer.succeed(Backend, { name: options.copy === false ? "local-zero-copy" : "local", run: (spec) => runJob(spec, options.copy !== false) })
