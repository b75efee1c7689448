/**
 * Actor: a rank as an actor. It owns its state, takes typed requests from its inbox one at a
 * time, answers each with a typed reply, and may emit typed events.
 *
 * A protocol is a record of request tags to [request, reply] types; a behavior gives one
 * handler per tag. Handlers run strictly in inbox order on the actor's own fiber, so the state
 * they close over needs no locks. If a handler fails, the actor stops: the request that failed
 * and every request still queued fail with the same error, and `failure` completes so a
 * supervisor can end the job.
 *
 *   type Protocol = { Forward: [{ microBatch: number }, number]; Stop: [void, void] }
 *   const ref = yield* Actor.spawn(3, { Forward: ({ microBatch }) => ..., Stop: () => Effect.void })
 *   const loss = yield* ref.ask("Forward", { microBatch: 0 })
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/**
 * A protocol: request tag -> [request, reply].
 * @category models
 */
export type Protocol = Record<string, readonly [unknown, unknown]>

/**
 * One handler per request tag.
 * @category models
 */
export type Behavior<P extends Protocol, E, R> = {
  readonly [K in keyof P]: (request: P[K][0]) => Effect.Effect<P[K][1], E, R>
}

interface Envelope<P extends Protocol, E> {
  readonly tag: keyof P
  readonly request: unknown
  readonly reply: Deferred.Deferred<unknown, E | ActorStopped>
}

/**
 * The actor stopped (its behavior failed earlier, or the job ended) before answering.
 * @category errors
 */
export class ActorStopped extends Error {
  readonly _tag = "ActorStopped"
  readonly rank: number
  constructor(rank: number, why: string) {
    super(`rank ${rank}'s actor stopped: ${why}`)
    this.rank = rank
  }
}

/**
 * A handle on a running actor.
 * @category models
 */
export interface ActorRef<P extends Protocol, E> {
  readonly rank: number
  /** Sends a request and waits for its reply. */
  readonly ask: <K extends keyof P & string>(tag: K, request: P[K][0]) => Effect.Effect<P[K][1], E | ActorStopped>
  /** Sends a request and returns at once with a handle on the reply (requests stay ordered). */
  readonly tell: <K extends keyof P & string>(tag: K, request: P[K][0]) => Effect.Effect<Effect.Effect<P[K][1], E | ActorStopped>>
  /** Completes with the behavior's error when the actor stops on a failure. */
  readonly failure: Effect.Effect<never, E>
}

/**
 * Starts an actor on its own fiber in the current scope (interrupted when the scope closes).
 * @category constructors
 */
export const spawn = <P extends Protocol, E, R>(
  rank: number,
  behavior: Behavior<P, E, R>,
  options: { readonly capacity?: number } = {},
): Effect.Effect<ActorRef<P, E>, never, R | Scope.Scope> =>
  Effect.gen(function* () {
    const inbox = yield* Queue.bounded<Envelope<P, E>>(options.capacity ?? 64)
    const failed = yield* Deferred.make<never, E>()
    let stopped: string | undefined
    const drain = (why: string, error: E | ActorStopped) =>
      Effect.gen(function* () {
        stopped = why
        const rest = yield* Queue.clear(inbox)
        for (const envelope of rest) Deferred.doneUnsafe(envelope.reply, Effect.fail(error))
      })
    const loop = Effect.gen(function* () {
      while (true) {
        const envelope = yield* Queue.take(inbox)
        const handler = behavior[envelope.tag] as (request: unknown) => Effect.Effect<unknown, E, R>
        const exit = yield* Effect.exit(handler(envelope.request))
        if (exit._tag === "Success") {
          Deferred.doneUnsafe(envelope.reply, Effect.succeed(exit.value))
          continue
        }
        const error = exit.cause.reasons.find((r) => r._tag === "Fail") as { error: E } | undefined
        Deferred.doneUnsafe(envelope.reply, Effect.failCause(exit.cause))
        yield* drain("its behavior failed", error?.error ?? new ActorStopped(rank, "its behavior died"))
        if (error !== undefined) Deferred.doneUnsafe(failed, Effect.fail(error.error))
        return yield* Effect.failCause(exit.cause)
      }
    })
    yield* Effect.forkScoped(Effect.onInterrupt(loop, () => drain("the job ended", new ActorStopped(rank, "the job ended"))))
    const tell = <K extends keyof P & string>(tag: K, request: P[K][0]) =>
      Effect.gen(function* () {
        const reply = Deferred.makeUnsafe<unknown, E | ActorStopped>()
        if (stopped !== undefined) return Effect.fail(new ActorStopped(rank, stopped))
        yield* Queue.offer(inbox, { tag, request, reply })
        return Deferred.await(reply) as Effect.Effect<P[K][1], E | ActorStopped>
      })
    return {
      rank,
      tell,
      ask: (tag, request) => Effect.flatten(tell(tag, request)),
      failure: Deferred.await(failed),
    } satisfies ActorRef<P, E>
  })
