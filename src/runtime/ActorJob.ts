/**
 * ActorJob: a supervised job of rank actors driven by one driver.
 *
 * Every rank builds its behavior (its state: parameters, optimizer, tape) with its own
 * Communicator and logger, then serves typed requests. The driver talks to all ranks through
 * their ActorRefs and reads their events. The job ends when the driver ends, or as soon as
 * any rank's behavior fails: then the job fails with RankFailed naming that rank, the other
 * actors are interrupted, their pending requests fail, the fabric is closed (collectives still
 * waiting fail with Closed) and nothing keeps running.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type { Logger } from "pino"
import { Communicator, type CommunicatorShape } from "../comm/Communicator.js"
import * as Actor from "./Actor.js"
import * as Job from "./Job.js"
import { RankFailed } from "./JobError.js"
import * as Log from "./Log.js"
import * as LoggedCommunicator from "./LoggedCommunicator.js"

/**
 * What a rank's builder gets.
 * @category models
 */
export interface RankContext<Ev> {
  readonly rank: number
  readonly log: Logger
  /** Publishes an event to the driver. */
  readonly emit: (event: Ev) => void
}

/**
 * An event and the rank that emitted it.
 * @category models
 */
export interface RankEvent<Ev> {
  readonly rank: number
  readonly event: Ev
}

/**
 * Options of an actor job.
 * @category models
 */
export interface ActorJobOptions extends Job.JobOptions {
  readonly log?: Logger
  /** Each rank's logger fields (its coordinates), when known. */
  readonly place?: (rank: number) => Parameters<typeof Log.forRank>[2]
  /** Wraps each rank's communicator (tracing). */
  readonly wrap?: (rank: number, comm: CommunicatorShape) => CommunicatorShape
}

/**
 * Runs the actors and the driver; see the file header.
 * @category constructors
 */
export const run = <P extends Actor.Protocol, E, Ev, A, E2>(
  options: ActorJobOptions,
  build: (ctx: RankContext<Ev>) => Effect.Effect<Actor.Behavior<P, E, Communicator>, E, Communicator>,
  driver: (refs: ReadonlyArray<Actor.ActorRef<P, E>>, events: Queue.Dequeue<RankEvent<Ev>>) => Effect.Effect<A, E2>,
): Effect.Effect<A, E2 | RankFailed | E | Actor.ActorStopped> =>
  Effect.scoped(
    Effect.gen(function* () {
      const fabric = Job.makeFabric(options)
      yield* Effect.addFinalizer((exit) => Effect.sync(() => fabric.close(Exit.isSuccess(exit) ? "the job ended" : "the job failed")))
      const root = options.log ?? Log.root({ level: "silent" })
      const events = yield* Queue.unbounded<RankEvent<Ev>>()
      const refs: Array<Actor.ActorRef<P, E>> = []
      for (let rank = 0; rank < options.world; rank++) {
        const log = Log.forRank(root, rank, options.place?.(rank))
        const logged = LoggedCommunicator.make(fabric.communicator(rank), log)
        const comm = options.wrap === undefined ? logged : options.wrap(rank, logged)
        const emit = (event: Ev) => void Queue.offerUnsafe(events, { rank, event })
        const behavior = yield* build({ rank, log, emit }).pipe(
          Effect.provideService(Communicator, comm),
          Effect.catchCause((cause) => Effect.fail(new RankFailed({ rank, cause }))),
        )
        const provided = Object.fromEntries(
          Object.entries(behavior).map(([tag, handler]) => [
            tag,
            (request: unknown) => (handler as (r: unknown) => Effect.Effect<unknown, E, Communicator>)(request).pipe(Effect.provideService(Communicator, comm)),
          ]),
        ) as unknown as Actor.Behavior<P, E, never>
        refs.push(yield* Actor.spawn(rank, provided))
      }
      const firstFailure = Effect.raceAll(
        refs.map((ref) => Effect.catchCause(ref.failure, (cause) => Effect.fail(new RankFailed({ rank: ref.rank, cause: cause as Cause.Cause<unknown> })))),
      )
      return yield* Effect.raceFirst(driver(refs, events), firstFailure)
    }),
  )
