/**
 * Backend: where the ranks of a job run and how their bytes move, as an Effect service. A
 * Layer provides one (LocalBackend: fibers of this process; ThreadsBackend: worker threads;
 * later MPI processes and NCCL devices), and ChooseBackend picks the Layer by name.
 *
 * A backend runs a rank program described as data (RankProgram) on every rank, through
 * RankHost, and carries the ranks' events (step reports, spans, log records) to the job's
 * listener while the job runs. Supervision is the same everywhere: the job succeeds with every
 * rank's result in rank order, or fails with the first rank that failed (RankFailed); then,
 * and when the job is interrupted, every rank stops and nothing of the job keeps running.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { RankFailed } from "./JobError.js"
import type * as RankEvents from "./RankEvents.js"
import type * as RankProgram from "./RankProgram.js"

/**
 * A job for a backend.
 * @category models
 */
export interface JobSpec {
  readonly world: number
  readonly program: RankProgram.Ref
  /** How long a collective or recv waits for its peers, in ms (default 30 s). */
  readonly timeoutMs?: number
  /** Where the ranks' events go. */
  readonly listener?: RankEvents.Listener
}

/**
 * What a backend provides.
 * @category models
 */
export interface BackendShape {
  readonly name: string
  /** Runs the program on every rank; see the file header. */
  readonly run: (spec: JobSpec) => Effect.Effect<Array<unknown>, RankFailed>
}

/**
 * The Backend service.
 * @category services
 */
export class Backend extends Context.Service<Backend, BackendShape>()("pleat/Backend") {}

/**
 * Runs a job on the backend in context.
 * @category constructors
 */
export const run = <A = unknown>(spec: JobSpec): Effect.Effect<Array<A>, RankFailed, Backend> =>
  Effect.flatMap(Backend, (backend) => backend.run(spec) as Effect.Effect<Array<A>, RankFailed>)
