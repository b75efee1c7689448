/**
 * Recompute (activation checkpointing): run a function of tensors without keeping what its ops
 * would save for the backward, and run it again in the backward to get its gradients.
 *
 *   forward    out = f(inputs) with the tape paused: no nodes, only `out` and `inputs` kept
 *   backward   f(fresh leaves over the inputs' storage) recorded apart, a backward pass over
 *              those nodes from out's gradient; the leaves' gradients are the inputs'
 *
 * Parameters that f closes over are leaves of the tape: the replayed pass accumulates their
 * gradients as a normal one does. Any other tensor that needs a gradient must be one of
 * `inputs` (the replayed pass refuses one made outside f). The replay gives bit-identical values
 * because every kernel is deterministic, so gradients equal those without recompute exactly.
 * `recomputeEffect` is the same for a function with collectives: its replay meets the other
 * ranks again in the backward, in the same order on every member (as Megatron's full
 * recompute does). A function that updates state as it runs must not repeat that update in
 * the replay: the `replay` argument says which run it is.
 */
import * as Effect from "effect/Effect"
import type { Node, Tape } from "./Tape.js"
import * as StableWeights from "./StableWeights.js"
import * as Tensor from "./Tensor.js"

/** The tape of the first input recorded on one, if it records now. */
const recordingTape = (inputs: ReadonlyArray<Tensor.Tensor>): Tape | undefined => {
  const tape = inputs.find((t) => t.tape !== undefined)?.tape
  return tape?.recording === true ? tape : undefined
}

/**
 * The inputs of a replay: leaves over the same storage where a gradient is needed, a weight's
 * step generation kept (StableWeights: the replay runs within the step).
 */
const freshInputs = (tape: Tape, inputs: ReadonlyArray<Tensor.Tensor>): Array<Tensor.Tensor> =>
  inputs.map((t) => StableWeights.mark(t.requiresGrad ? tape.parameter(t) : Tensor.detach(t), StableWeights.generationOf(t) ?? 0))

/** The recorded output of the recompute node (over the first run's output's values, where they are: no copy). */
const recordedOutput = (tape: Tape, op: string, out: Tensor.Tensor): Tensor.Tensor => out.alias({ tape, requiresGrad: true, op })

/** The replay's input gradients (zeros where none reached an input). */
const gradientsOf = (inputs: ReadonlyArray<Tensor.Tensor>, fresh: ReadonlyArray<Tensor.Tensor>): Array<Tensor.Tensor | undefined> =>
  fresh.map((t, i) => ((inputs[i] as Tensor.Tensor).requiresGrad ? (t.grad ?? Tensor.zeros(t.shape, { dtype: t.dtype, device: t.device })) : undefined))

/**
 * `f(inputs)`, its intermediate tensors recomputed in the backward instead of kept.
 * @category combinators
 */
export const recompute = (op: string, inputs: ReadonlyArray<Tensor.Tensor>, f: (inputs: ReadonlyArray<Tensor.Tensor>, replay: boolean) => Tensor.Tensor): Tensor.Tensor => {
  const tape = recordingTape(inputs)
  if (tape === undefined) return f(inputs, false)
  const out = tape.noGrad(() => f(inputs, false))
  const output = recordedOutput(tape, `recompute ${op}`, out)
  const node: Node = {
    op: output.op,
    inputs,
    output,
    backward: (gradOutput) => {
      const fresh = freshInputs(tape, inputs)
      const { value, nodes } = tape.recordApart(() => f(fresh, true))
      if (value.requiresGrad) tape.backwardOver(nodes, value, gradOutput)
      return gradientsOf(inputs, fresh)
    },
  }
  tape.record(node)
  return output
}

/**
 * `recompute` for an effectful function (one with collectives).
 * @category combinators
 */
export const recomputeEffect = <E, R>(
  op: string,
  inputs: ReadonlyArray<Tensor.Tensor>,
  f: (inputs: ReadonlyArray<Tensor.Tensor>, replay: boolean) => Effect.Effect<Tensor.Tensor, E, R>,
): Effect.Effect<Tensor.Tensor, E, R> =>
  Effect.suspend(() => {
    const tape = recordingTape(inputs)
    if (tape === undefined) return f(inputs, false)
    return Effect.gen(function* () {
      // The replay runs in the backward, outside this fiber's services: it takes them along.
      const services = yield* Effect.context<R>()
      // Suspended: f may run ops as it builds its Effect, which must happen inside the scope.
      const out = yield* tape.noGradEffect(Effect.suspend(() => f(inputs, false)))
      const output = recordedOutput(tape, `recompute ${op}`, out)
      tape.record({
        op: output.op,
        inputs,
        output,
        backward: () => {
          throw new Error(`recompute ${op} has an effectful backward: run tape.backwardEffect`)
        },
        backwardEffect: (gradOutput) =>
          Effect.gen(function* () {
            const fresh = freshInputs(tape, inputs)
            const { value, nodes } = yield* tape.recordApartEffect(
              Effect.provideContext(
                Effect.suspend(() => f(fresh, true)),
                services,
              ),
            )
            if (value.requiresGrad) yield* tape.backwardOverEffect(nodes, value, gradOutput)
            return gradientsOf(inputs, fresh)
          }),
      })
      return output
    })
  })
