// Operators compose when their types line up; laid operators check their edges at run time:
// an operator whose output is not in its declared layout fails at that edge naming itself and
// both layouts, and a chain whose neighbours declare different layouts fails naming the producer.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import * as Operator from "../../src/dataflow/Operator.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const sp = TensorLayout.make([TensorLayout.dim("tokens", 8, [{ axis: "tp", size: 2 }]), TensorLayout.dim("hidden", 2)])
const full = TensorLayout.make([TensorLayout.dim("tokens", 8), TensorLayout.dim("hidden", 2)])
const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : ""))) : "(succeeded)"

describe("operators", () => {
  test("operators compose when types line up", async () => {
    const double = Operator.make("double", (x: number) => Effect.succeed(x * 2))
    const show = Operator.make("show", (x: number) => Effect.succeed(`=${x}`))
    const chain = Operator.pipeline(double, double, show)
    expect(chain.name).toBe("double -> double -> show")
    expect(await Effect.runPromise(chain.run(3))).toBe("=12")
    // @ts-expect-error show produces a string, double needs a number
    void Operator.pipeline(show, double)
  })

  test("an output in another layout fails at the producing edge, naming the operator and both layouts", async () => {
    // Forgets the reduce-scatter: hands on all 8 rows and says so.
    const forgets = Operator.laid("row-parallel out", { input: sp, output: sp }, (x: TensorLayout.WithLayout) =>
      Effect.succeed(TensorLayout.attach(Tensor.zeros([8, 2]), TensorLayout.gather(x.layout, "tp"))),
    )
    // Claims the right layout but hands on the wrong number of rows.
    const lies = Operator.laid("liar", { input: sp, output: sp }, (x: TensorLayout.WithLayout) => Effect.succeed(TensorLayout.attach(Tensor.zeros([8, 2]), x.layout)))
    const next = Operator.laid("next", { input: sp, output: sp }, (x: TensorLayout.WithLayout) => Effect.succeed(x))
    const input = TensorLayout.attach(Tensor.zeros([4, 2]), sp)
    expect(failureOf(await Effect.runPromise(Effect.exit(Operator.andThen(forgets, next).run(input))))).toBe(
      "operator row-parallel out declares its output as [tokens 8/tp2, hidden 2] sequence-parallel but produced [tokens 8, hidden 2]",
    )
    expect(failureOf(await Effect.runPromise(Effect.exit(lies.run(input))))).toBe(
      "operator liar declares its output as [tokens 8/tp2, hidden 2] sequence-parallel but produced a tensor [8, 2], where [tokens 8/tp2, hidden 2] sequence-parallel has local shape [4, 2]",
    )
    expect(failureOf(await Effect.runPromise(Effect.exit(next.run(TensorLayout.attach(Tensor.zeros([8, 2]), full)))))).toBe(
      "operator next declares its input as [tokens 8/tp2, hidden 2] sequence-parallel but was given [tokens 8, hidden 2]",
    )
    const out = await Effect.runPromise(Operator.chain("two", [next, next]).run(input))
    expect(TensorLayout.format(out.layout)).toBe("[tokens 8/tp2, hidden 2] sequence-parallel")
  })

  test("neighbours that declare different layouts fail before running, naming the producer and both layouts", async () => {
    let ran = false
    const producer = Operator.laid("attention", { input: sp, output: sp }, (x: TensorLayout.WithLayout) =>
      Effect.sync(() => {
        ran = true
        return x
      }),
    )
    const consumer = Operator.laid("mlp", { input: full, output: full }, (x: TensorLayout.WithLayout) => Effect.succeed(x))
    const message = failureOf(await Effect.runPromise(Effect.exit(Operator.andThen(producer, consumer).run(TensorLayout.attach(Tensor.zeros([4, 2]), sp)))))
    expect(message).toBe(
      "operator attention declares its output as [tokens 8/tp2, hidden 2] sequence-parallel but the next operator, mlp, declares its input as [tokens 8, hidden 2]",
    )
    expect(ran).toBe(false)
  })
})
