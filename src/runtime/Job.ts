/**
 * Job: runs one program on every rank of a backend, supervised.
 *
 * Each rank runs as its own fiber with its own Communicator. The job succeeds with every
 * rank's result, in rank order, or fails with the first rank that failed (RankFailed, naming
 * the rank and carrying its cause); the backend is then closed (every collective still
 * waiting fails with Closed), the other ranks are interrupted and nothing keeps running.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Communicator } from "../comm/Communicator.js"
import * as LocalFabric from "../comm/LocalFabric.js"
import { RankFailed } from "./JobError.js"

/**
 * Options of a job.
 * @category models
 */
export interface JobOptions {
  readonly world: number
  /** Backend: "local" copies buffers (default), "local-zero-copy" shares them. */
  readonly backend?: "local" | "local-zero-copy"
  /** How long a collective waits for the other members, in ms (default 30 s). */
  readonly timeoutMs?: number
}

/** Makes the fabric of a job. */
const makeFabric = (options: JobOptions) =>
  LocalFabric.make({
    world: options.world,
    copy: options.backend !== "local-zero-copy",
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  })

/**
 * Runs `program(rank)` on every rank; see the file header for the supervision rules.
 * @category constructors
 */
export const run = <A, E>(options: JobOptions, program: (rank: number) => Effect.Effect<A, E, Communicator>): Effect.Effect<Array<A>, RankFailed> =>
  Effect.acquireUseRelease(
    Effect.sync(() => makeFabric(options)),
    (fabric) => {
      // The job fails with the first rank that failed; the others' failures (Closed) follow from it.
      let first: RankFailed | undefined
      return Effect.forEach(
        Array.from({ length: options.world }, (_, r) => r),
        (rank) =>
          program(rank).pipe(
            Effect.provideService(Communicator, fabric.communicator(rank)),
            // The first failure closes the fabric before the other ranks are interrupted, so
            // their waiting ops fail with Closed (as on every backend), not with a timeout.
            Effect.catchCause((cause) => {
              const failed = new RankFailed({ rank, cause })
              first ??= failed
              return Effect.andThen(
                Effect.sync(() => fabric.close("the job failed")),
                Effect.fail(failed),
              )
            }),
          ),
        { concurrency: "unbounded" },
      ).pipe(Effect.catchCause((cause) => (first === undefined ? Effect.failCause(cause) : Effect.fail(first))))
    },
    (fabric, exit) => Effect.sync(() => fabric.close(Exit.isSuccess(exit) ? "the job ended" : "the job failed")),
  )

/**
 * Runs a job to a Promise (for scripts and tests).
 * @category constructors
 */
export const runPromise = <A, E>(options: JobOptions, program: (rank: number) => Effect.Effect<A, E, Communicator>): Promise<Array<A>> => Effect.runPromise(run(options, program))
