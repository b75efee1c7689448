/**
 * Operator: a typed dataflow stage, an effect from an input type to an output type. A
 * training graph is a composition of operators; composition is checked by the compiler
 * (the output type of one stage must be the input type of the next).
 */
import * as Effect from "effect/Effect"

/**
 * A named stage from I to O.
 * @category models
 */
export interface Operator<I, O, E = never, R = never> {
  readonly name: string
  readonly run: (input: I) => Effect.Effect<O, E, R>
}

/**
 * An operator from a function.
 * @category constructors
 */
export const make = <I, O, E = never, R = never>(name: string, run: (input: I) => Effect.Effect<O, E, R>): Operator<I, O, E, R> => ({ name, run })

/**
 * `a` then `b`; the name records the chain.
 * @category combinators
 */
export const andThen = <I, M, O, E1, E2, R1, R2>(a: Operator<I, M, E1, R1>, b: Operator<M, O, E2, R2>): Operator<I, O, E1 | E2, R1 | R2> => ({
  name: `${a.name} -> ${b.name}`,
  run: (input) => Effect.flatMap(a.run(input), b.run),
})

/**
 * A chain of operators, left to right.
 * @category combinators
 */
export function pipeline<A, B, E1, R1>(a: Operator<A, B, E1, R1>): Operator<A, B, E1, R1>
export function pipeline<A, B, C, E1, E2, R1, R2>(a: Operator<A, B, E1, R1>, b: Operator<B, C, E2, R2>): Operator<A, C, E1 | E2, R1 | R2>
export function pipeline<A, B, C, D, E1, E2, E3, R1, R2, R3>(
  a: Operator<A, B, E1, R1>,
  b: Operator<B, C, E2, R2>,
  c: Operator<C, D, E3, R3>,
): Operator<A, D, E1 | E2 | E3, R1 | R2 | R3>
export function pipeline(...ops: ReadonlyArray<Operator<unknown, unknown, unknown, unknown>>): Operator<unknown, unknown, unknown, unknown> {
  return ops.reduce((acc, op) => andThen(acc, op))
}
