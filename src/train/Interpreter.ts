/**
 * Interpreter: runs one pp rank's pipeline action list (src/pipeline, checked before the job
 * starts) over typed links, one small handler per action.
 *
 * Each (micro-batch, chunk) in flight has a typed state that the actions move along:
 *
 *   recvForward        (none) -> received          the input arrived on its activation link
 *   forward   received | (none, first stage) -> forwarded
 *   sendForward        forwarded -> forwarded (sent)
 *   recvBackward       forwarded (sent) -> gradientReceived
 *   backward  gradientReceived | forwarded (last stage) -> backwarded, or done (first stage)
 *   sendBackward       backwarded -> done
 *
 * An action that finds its (micro-batch, chunk) in any other state fails with an
 * InterpretError naming the action, the rank and the state it found, as does a list that ends
 * with work in flight: a malformed list is an error, never a silent mix-up. In a forward-only
 * list (evaluation) a forward is done once its activation is sent, or at once on the last stage. What a forward and
 * a backward compute is the caller's (`Program`); the interpreter only moves tensors and
 * keeps the books (time spent computing and waiting, one span per compute and wait).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Link from "../dataflow/Link.js"
import type * as TensorLayout from "../dataflow/TensorLayout.js"
import * as A from "../pipeline/Action.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as PipelineLinks from "./PipelineLinks.js"

/**
 * A forward that ran: what it passes on and how to run its backward.
 * @category models
 */
export interface Forwarded<E, R> {
  /** The activation for the next stage (undefined on the last stage). */
  readonly output: TensorLayout.WithLayout | undefined
  /**
   * The backward from the gradient of the output (undefined on the last stage); gives the
   * gradient of the input (undefined on the first stage).
   */
  readonly backward: (outputGradient: Tensor.Tensor | undefined) => Effect.Effect<Tensor.Tensor | undefined, E, R>
}

/**
 * What a rank computes, and where its tensors travel.
 * @category models
 */
export interface Program<E, R> {
  /** This rank's pp index (for error messages). */
  readonly pp: number
  readonly links: PipelineLinks.PipelineLinks
  /** Whether a chunk of this rank is the first or the last global stage. */
  readonly isFirst: (chunk: number) => boolean
  readonly isLast: (chunk: number) => boolean
  /** The forward of a micro-batch on a chunk, from the received input (none on the first stage). */
  readonly forward: (microBatch: number, chunk: number, input: Tensor.Tensor | undefined) => Effect.Effect<Forwarded<E, R>, E, R>
  /** Forward passes only (evaluation): a forward is done once sent (or on the last stage). */
  readonly forwardOnly?: boolean | undefined
  /** Receives a span (name, start) for every compute and wait, timed with performance.now. */
  readonly span?: ((name: string, start: number) => void) | undefined
  /**
   * Runs right after a chunk's last backward in the list: the chunk's gradients are final, so
   * their reduction can be issued while the rest of the list runs (it must only issue, not wait
   * for other ranks: a stage waiting here could hold back the pipeline it is part of).
   */
  readonly chunkDone?: ((chunk: number) => Effect.Effect<void, E, R>) | undefined
}

/**
 * Milliseconds in forward, backward, and waiting for messages.
 * @category models
 */
export interface Times {
  readonly forwardMs: number
  readonly backwardMs: number
  readonly waitMs: number
}

/**
 * An action list that cannot run as written.
 * @category errors
 */
export class InterpretError extends Data.TaggedError("InterpretError")<{ readonly pp: number; readonly action: string; readonly detail: string }> {
  override get message(): string {
    return `pipeline action ${this.action} on pp rank ${this.pp}: ${this.detail}`
  }
}

type State<E, R> =
  | { readonly _tag: "received"; readonly input: Tensor.Tensor }
  | { readonly _tag: "forwarded"; readonly run: Forwarded<E, R>; readonly sent: boolean }
  | { readonly _tag: "gradientReceived"; readonly run: Forwarded<E, R>; readonly outputGradient: Tensor.Tensor }
  | { readonly _tag: "backwarded"; readonly inputGradient: Tensor.Tensor }

const describe = (s: State<unknown, unknown> | undefined): string => {
  if (s === undefined) return "nothing in flight"
  switch (s._tag) {
    case "received":
      return "its input received, not yet forwarded"
    case "forwarded":
      return s.sent ? "forwarded and sent" : "forwarded, not yet sent"
    case "gradientReceived":
      return "its output gradient received, not yet backwarded"
    case "backwarded":
      return "backwarded, its input gradient not yet sent"
  }
}

/** One rank's interpreter state: the program, the (micro-batch, chunk)s in flight, the times. */
interface Machine<E, R> {
  readonly program: Program<E, R>
  readonly inFlight: Map<number, Map<number, State<E, R>>>
  readonly times: { forwardMs: number; backwardMs: number; waitMs: number }
}

type Of<T extends A.Action["_tag"]> = Extract<A.Action, { readonly _tag: T }>

const stateOf = <E, R>(m: Machine<E, R>, a: A.Action) => m.inFlight.get(a.microBatch)?.get(a.chunk)

const set = <E, R>(m: Machine<E, R>, a: A.Action, s: State<E, R> | undefined) => {
  const byChunk = m.inFlight.get(a.microBatch) ?? new Map<number, State<E, R>>()
  if (s === undefined) byChunk.delete(a.chunk)
  else byChunk.set(a.chunk, s)
  if (byChunk.size === 0) m.inFlight.delete(a.microBatch)
  else m.inFlight.set(a.microBatch, byChunk)
}

const refuse = <E, R>(m: Machine<E, R>, a: A.Action, detail: string) => Effect.fail(new InterpretError({ pp: m.program.pp, action: A.format(a), detail }))

const unexpected = <E, R>(m: Machine<E, R>, a: A.Action, wanted: string) =>
  refuse(m, a, `needs micro-batch ${a.microBatch} on chunk ${a.chunk} ${wanted}, but it has ${describe(stateOf(m, a))}`)

const linkOf = <E, R>(m: Machine<E, R>, a: A.Send | A.Recv) => {
  const link = m.program.links.of(a)
  return link === undefined ? refuse(m, a, "no pipeline link was built for it (the links come from another action list)") : Effect.succeed(link)
}

/** Books `started..now` under `kind` and reports the span. */
const book = <E, R>(m: Machine<E, R>, kind: keyof Times, name: string, started: number) => {
  m.times[kind] += performance.now() - started
  m.program.span?.(name, started)
}

const recvForward = <E, R>(m: Machine<E, R>, a: Of<"recvForward">, started: number) => Effect.gen(() => recvForwardSteps(m, a, started))

/** recvForward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* recvForwardSteps<E, R>(m: Machine<E, R>, a: Of<"recvForward">, started: number) {
  if (stateOf(m, a) !== undefined) return yield* unexpected(m, a, "with nothing in flight")
  if (m.program.isFirst(a.chunk)) return yield* refuse(m, a, "the first stage receives no activations")
  const input = yield* Link.recv(yield* linkOf(m, a), a.microBatch)
  set(m, a, { _tag: "received", input })
  book(m, "waitMs", `wait activation mb ${a.microBatch}`, started)
}

const forward = <E, R>(m: Machine<E, R>, a: Of<"forward">, started: number) => Effect.gen(() => forwardSteps(m, a, started))

/** forward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* forwardSteps<E, R>(m: Machine<E, R>, a: Of<"forward">, started: number) {
  const s = stateOf(m, a)
  const first = m.program.isFirst(a.chunk)
  if (first ? s !== undefined : s?._tag !== "received") return yield* unexpected(m, a, first ? "with nothing in flight" : "with its input received")
  const ran = yield* m.program.forward(a.microBatch, a.chunk, s?._tag === "received" ? s.input : undefined)
  set(m, a, m.program.forwardOnly === true && m.program.isLast(a.chunk) ? undefined : { _tag: "forwarded", run: ran, sent: false })
  book(m, "forwardMs", `forward mb ${a.microBatch} chunk ${a.chunk}`, started)
}

const sendForward = <E, R>(m: Machine<E, R>, a: Of<"sendForward">) => Effect.gen(() => sendForwardSteps(m, a))

/** sendForward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* sendForwardSteps<E, R>(m: Machine<E, R>, a: Of<"sendForward">) {
  const s = stateOf(m, a)
  if (m.program.isLast(a.chunk)) return yield* refuse(m, a, "the last stage sends no activation")
  if (s?._tag !== "forwarded" || s.sent) return yield* unexpected(m, a, "forwarded and not yet sent")
  if (s.run.output === undefined) return yield* refuse(m, a, "its forward gave no activation to send")
  yield* Link.send(yield* linkOf(m, a), s.run.output, a.microBatch)
  set(m, a, m.program.forwardOnly === true ? undefined : { _tag: "forwarded", run: s.run, sent: true })
}

const recvBackward = <E, R>(m: Machine<E, R>, a: Of<"recvBackward">, started: number) => Effect.gen(() => recvBackwardSteps(m, a, started))

/** recvBackward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* recvBackwardSteps<E, R>(m: Machine<E, R>, a: Of<"recvBackward">, started: number) {
  const s = stateOf(m, a)
  if (m.program.isLast(a.chunk)) return yield* refuse(m, a, "the last stage receives no gradient")
  if (s?._tag !== "forwarded" || !s.sent) return yield* unexpected(m, a, "forwarded and sent")
  const outputGradient = yield* Link.recv(yield* linkOf(m, a), a.microBatch)
  set(m, a, { _tag: "gradientReceived", run: s.run, outputGradient })
  book(m, "waitMs", `wait gradient mb ${a.microBatch}`, started)
}

const backward = <E, R>(m: Machine<E, R>, a: Of<"backward">, started: number) => Effect.gen(() => backwardSteps(m, a, started))

/** backward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* backwardSteps<E, R>(m: Machine<E, R>, a: Of<"backward">, started: number) {
  const s = stateOf(m, a)
  const last = m.program.isLast(a.chunk)
  const ready = s?._tag === "gradientReceived" || (last && s?._tag === "forwarded") ? s : undefined
  if (ready === undefined) return yield* unexpected(m, a, last ? "forwarded (the last stage needs no gradient)" : "with its output gradient received")
  const inputGradient = yield* ready.run.backward(ready._tag === "gradientReceived" ? ready.outputGradient : undefined)
  if (m.program.isFirst(a.chunk)) set(m, a, undefined)
  else if (inputGradient === undefined) return yield* refuse(m, a, "the backward of a stage after the first gave no input gradient")
  else set(m, a, { _tag: "backwarded", inputGradient })
  book(m, "backwardMs", `backward mb ${a.microBatch} chunk ${a.chunk}`, started)
}

const sendBackward = <E, R>(m: Machine<E, R>, a: Of<"sendBackward">) => Effect.gen(() => sendBackwardSteps(m, a))

/** sendBackward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* sendBackwardSteps<E, R>(m: Machine<E, R>, a: Of<"sendBackward">) {
  const s = stateOf(m, a)
  if (m.program.isFirst(a.chunk)) return yield* refuse(m, a, "the first stage sends no gradient")
  if (s?._tag !== "backwarded") return yield* unexpected(m, a, "backwarded")
  yield* Link.send(yield* linkOf(m, a), s.inputGradient, a.microBatch)
  set(m, a, undefined)
}

const step = <E, R>(m: Machine<E, R>, a: A.Action) => {
  const started = performance.now()
  switch (a._tag) {
    case "recvForward":
      return recvForward(m, a, started)
    case "forward":
      return forward(m, a, started)
    case "sendForward":
      return sendForward(m, a)
    case "recvBackward":
      return recvBackward(m, a, started)
    case "backward":
      return backward(m, a, started)
    case "sendBackward":
      return sendBackward(m, a)
  }
}

/**
 * Runs the actions in order; returns the time spent.
 * @category combinators
 */
export const run = <E, R>(actions: ReadonlyArray<A.Action>, program: Program<E, R>) =>
  Effect.gen(function* () {
    const m: Machine<E, R> = { program, inFlight: new Map(), times: { forwardMs: 0, backwardMs: 0, waitMs: 0 } }
    const lastBackward = new Map<number, number>()
    actions.forEach((a, i) => {
      if (a._tag === "backward") lastBackward.set(a.chunk, i)
    })
    for (const [i, a] of actions.entries()) {
      yield* step(m, a)
      if (a._tag === "backward" && lastBackward.get(a.chunk) === i && program.chunkDone !== undefined) yield* program.chunkDone(a.chunk)
    }
    const left = [...m.inFlight].flatMap(([mb, byChunk]) => [...byChunk].map(([chunk, s]) => `micro-batch ${mb} on chunk ${chunk} (${describe(s)})`))
    if (left.length > 0) {
      const last = actions[actions.length - 1]
      return yield* Effect.fail(
        new InterpretError({
          pp: program.pp,
          action: last === undefined ? "(end of an empty list)" : `${A.format(last)} (the last)`,
          detail: `the list ends with work in flight: ${left.join("; ")}`,
        }),
      )
    }
    return { ...m.times } satisfies Times
  })
