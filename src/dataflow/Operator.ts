/**
 * Operator: a typed dataflow stage, an effect from an input type to an output type. A
 * training graph is a composition of operators; composition is checked by the compiler
 * (the output type of one stage must be the input type of the next).
 *
 * A stage whose input and output are laid-out tensors also declares their TensorLayouts
 * (`laid`). Each edge is then checked at run time, where the tensor is made: what an operator
 * produces must be in its declared output layout (the layout its body derived from what it
 * did, and a tensor of that layout's local shape), and when two operators are chained the
 * producer's output layout must be the consumer's input layout. A wrong layout fails at the
 * edge that produced it, with a LayoutMismatch naming the operator and both layouts.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as TensorLayout from "./TensorLayout.js"

/**
 * A named stage from I to O, with the layouts of its edges when it declares them.
 * @category models
 */
export interface Operator<I, O, E = never, R = never> {
  readonly name: string
  readonly run: (input: I) => Effect.Effect<O, E, R>
  /** The layout its input must be in (laid operators). */
  readonly input?: TensorLayout.TensorLayout | undefined
  /** The layout it promises for its output (laid operators). */
  readonly output?: TensorLayout.TensorLayout | undefined
}

/**
 * The error type of an operator (or a union of operators).
 * @category models
 */
export type ErrorOf<Op> = Op extends Operator<infer _I, infer _O, infer E, infer _R> ? E : never

/**
 * The services an operator (or a union of operators) requires.
 * @category models
 */
export type ServicesOf<Op> = Op extends Operator<infer _I, infer _O, infer _E, infer R> ? R : never

/**
 * A value that crosses a checked edge: a tensor with its layout (and anything else).
 * @category models
 */
export type Laid = TensorLayout.WithLayout

/**
 * A tensor on an operator's edge that is not in the declared layout.
 * @category errors
 */
export class LayoutMismatch extends Data.TaggedError("LayoutMismatch")<{
  readonly operator: string
  /** "chain": the next operator (`next`) declares another input layout (`actual`). */
  readonly edge: "input" | "output" | "chain"
  readonly declared: string
  readonly actual: string
  readonly next?: string | undefined
}> {
  override get message(): string {
    switch (this.edge) {
      case "output":
        return `operator ${this.operator} declares its output as ${this.declared} but produced ${this.actual}`
      case "input":
        return `operator ${this.operator} declares its input as ${this.declared} but was given ${this.actual}`
      default:
        return `operator ${this.operator} declares its output as ${this.declared} but the next operator, ${this.next}, declares its input as ${this.actual}`
    }
  }
}

/**
 * An operator from a function.
 * @category constructors
 */
export const make = <I, O, E = never, R = never>(name: string, run: (input: I) => Effect.Effect<O, E, R>): Operator<I, O, E, R> => ({ name, run })

/** Checks a value against a declared layout: the same layout, and a tensor of its local shape. */
const check = (operator: string, edge: "input" | "output", declared: TensorLayout.TensorLayout, value: Laid) => {
  const mismatch = (actual: string) => Effect.fail(new LayoutMismatch({ operator, edge, declared: TensorLayout.format(declared), actual }))
  if (!TensorLayout.equals(value.layout, declared)) return mismatch(TensorLayout.format(value.layout))
  const misfit = TensorLayout.misfit(declared, value.tensor)
  return misfit === undefined ? Effect.void : mismatch(misfit)
}

/**
 * An operator with declared input and output layouts, checked on every run: the input when
 * it comes in, the output as it leaves.
 * @category constructors
 */
export const laid = <I extends Laid, O extends Laid, E = never, R = never>(
  name: string,
  layouts: { readonly input: TensorLayout.TensorLayout; readonly output: TensorLayout.TensorLayout },
  run: (input: I) => Effect.Effect<O, E, R>,
): Operator<I, O, E | LayoutMismatch, R> => ({
  name,
  input: layouts.input,
  output: layouts.output,
  run: (input) => Effect.gen(() => checkedRun(name, layouts, run, input)),
})

/** A laid operator's run between its layout checks, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* checkedRun<I extends Laid, O extends Laid, E, R>(
  name: string,
  layouts: { readonly input: TensorLayout.TensorLayout; readonly output: TensorLayout.TensorLayout },
  run: (input: I) => Effect.Effect<O, E, R>,
  input: I,
) {
  yield* check(name, "input", layouts.input, input)
  const out = yield* run(input)
  yield* check(name, "output", layouts.output, out)
  return out
}

/**
 * An operator whose input is not a laid tensor (token ids) but whose output is, checked.
 * @category constructors
 */
export const producing = <I, O extends Laid, E = never, R = never>(
  name: string,
  output: TensorLayout.TensorLayout,
  run: (input: I) => Effect.Effect<O, E, R>,
): Operator<I, O, E | LayoutMismatch, R> => ({
  name,
  output,
  run: (input) => Effect.tap(run(input), (out) => check(name, "output", output, out)),
})

/**
 * `a` then `b`; the name records the chain. When both declare the layout of the edge between
 * them, the layouts must agree: otherwise the chain fails before running, naming the producer.
 * @category combinators
 */
export const andThen = <I, M, O, E1, E2, R1, R2>(a: Operator<I, M, E1, R1>, b: Operator<M, O, E2, R2>): Operator<I, O, E1 | E2 | LayoutMismatch, R1 | R2> => {
  const edge =
    a.output !== undefined && b.input !== undefined && !TensorLayout.equals(a.output, b.input)
      ? new LayoutMismatch({ operator: a.name, edge: "chain", declared: TensorLayout.format(a.output), actual: TensorLayout.format(b.input), next: b.name })
      : undefined
  return {
    name: `${a.name} -> ${b.name}`,
    input: a.input,
    output: b.output,
    run: (input) => (edge !== undefined ? Effect.fail(edge) : Effect.flatMap(a.run(input), b.run)),
  }
}

/**
 * A chain of operators, left to right.
 * @category combinators
 */
export function pipeline<A, B, E1, R1>(a: Operator<A, B, E1, R1>): Operator<A, B, E1, R1>
export function pipeline<A, B, C, E1, E2, R1, R2>(a: Operator<A, B, E1, R1>, b: Operator<B, C, E2, R2>): Operator<A, C, E1 | E2 | LayoutMismatch, R1 | R2>
export function pipeline<A, B, C, D, E1, E2, E3, R1, R2, R3>(
  a: Operator<A, B, E1, R1>,
  b: Operator<B, C, E2, R2>,
  c: Operator<C, D, E3, R3>,
): Operator<A, D, E1 | E2 | E3 | LayoutMismatch, R1 | R2 | R3>
export function pipeline(...ops: ReadonlyArray<Operator<unknown, unknown, unknown, unknown>>): Operator<unknown, unknown, unknown, unknown> {
  return ops.reduce((acc, op) => andThen(acc, op))
}

/**
 * A chain of operators of one type, left to right (a run of layers); the identity if empty.
 * @category combinators
 */
export const chain = <A, E, R>(name: string, ops: ReadonlyArray<Operator<A, A, E, R>>): Operator<A, A, E | LayoutMismatch, R> =>
  ops.length === 0
    ? make(name, (a: A) => Effect.succeed(a))
    : ops.slice(1).reduce<Operator<A, A, E | LayoutMismatch, R>>((acc, op) => andThen(acc, op), ops[0] as Operator<A, A, E, R>)
