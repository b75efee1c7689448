/**
 * Reply: a one-shot answer to one waiting member of a collective. Lighter than a Deferred on
 * the path every collective takes (one callback, no observer list), which matters for small
 * collectives. The first answer wins; later ones are ignored.
 */
import * as Effect from "effect/Effect"

/**
 * A one-shot reply.
 * @category models
 */
export class Reply<A, E> {
  #result: Effect.Effect<A, E> | undefined
  #resume: ((e: Effect.Effect<A, E>) => void) | undefined

  /** Answers (once). */
  done(result: Effect.Effect<A, E>): void {
    if (this.#result !== undefined) return
    this.#result = result
    const resume = this.#resume
    this.#resume = undefined
    resume?.(result)
  }

  /** Waits for the answer. */
  readonly await: Effect.Effect<A, E> = Effect.callback((resume) => {
    if (this.#result !== undefined) resume(this.#result)
    else this.#resume = resume
  })
}
