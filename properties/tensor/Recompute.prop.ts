// Recompute (activation checkpointing): on random shapes and values, a block run through
// `recompute` / `recomputeEffect` gives bit-identical outputs and gradients (of its input, of the
// parameters it closes over, and of a tensor used after it) to the same block recorded normally,
// in float64 and float32; the tape keeps fewer bytes; a tensor needing a gradient that the block
// takes from outside its inputs is refused by name.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type * as DType from "../../src/tensor/DType.js"
import { add, mul } from "../../src/tensor/ops/Elementwise.js"
import { silu } from "../../src/tensor/ops/Elementwise.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { rmsNorm } from "../../src/tensor/ops/Norm.js"
import { sumAll } from "../../src/tensor/ops/Reduce.js"
import * as Recompute from "../../src/tensor/Recompute.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "./gradcheck.js"

const caseArb = fc.record({
  rows: fc.integer({ min: 1, max: 6 }),
  hidden: fc.integer({ min: 1, max: 6 }),
  width: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  dtype: fc.constantFrom<DType.DType>("float64", "float32"),
})
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never

const as = (t: Tensor.Tensor, dtype: DType.DType) => Tensor.fromArray(t.data, t.shape, { dtype })

/** x + silu(rmsNorm(x) W1) W2: a residual block with parameters it closes over. */
const block = (x: Tensor.Tensor, norm: Tensor.Tensor, w1: Tensor.Tensor, w2: Tensor.Tensor) => add(x, matmul(silu(matmul(rmsNorm(x, norm), w1)), w2))

type Mode = "kept" | "recompute" | "recomputeEffect"

/** Runs embed -> block -> loss on a fresh tape; gives the loss, every leaf's gradient and the bytes kept. */
const run = (c: Case, mode: Mode) => {
  const tape = Tape.make()
  const leaf = (t: Tensor.Tensor) => tape.parameter(as(t, c.dtype))
  const input = leaf(uniform([c.rows, c.hidden], c.seed))
  const scaleIn = leaf(uniform([c.hidden], c.seed + 1))
  const norm = leaf(uniform([c.hidden], c.seed + 2))
  const w1 = leaf(uniform([c.hidden, c.width], c.seed + 3))
  const w2 = leaf(uniform([c.width, c.hidden], c.seed + 4))
  const after = leaf(uniform([c.rows, c.hidden], c.seed + 5))
  // x is not a leaf: its gradient must come back through the recompute node.
  const x = mul(input, scaleIn)
  const body = (inputs: ReadonlyArray<Tensor.Tensor>) => block(inputs[0] as Tensor.Tensor, norm, w1, w2)
  const y =
    mode === "kept"
      ? body([x])
      : mode === "recompute"
        ? Recompute.recompute("block", [x], body)
        : Effect.runSync(Recompute.recomputeEffect("block", [x], (inputs) => Effect.succeed(body(inputs))))
  const loss = sumAll(mul(y, after))
  const kept = tape.savedBytes()
  if (mode === "recomputeEffect") Effect.runSync(tape.backwardEffect(loss))
  else tape.backward(loss)
  const grads = [input, scaleIn, norm, w1, w2, after].map((t) => Array.from((t.grad as Tensor.Tensor).data))
  return { loss: Tensor.item(loss), output: Array.from(y.data), grads, kept }
}

describe("recompute", () => {
  test("outputs and gradients are bit-identical to keeping the activations; fewer bytes are kept", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const kept = run(c, "kept")
        for (const mode of ["recompute", "recomputeEffect"] as const) {
          const re = run(c, mode)
          expect(re.loss).toBe(kept.loss)
          expect(re.output).toEqual(kept.output)
          expect(re.grads).toEqual(kept.grads)
          expect(re.kept).toBeLessThan(kept.kept)
        }
      }),
      { numRuns: 60 },
    )
  })

  test("a tensor needing a gradient taken from outside the inputs is refused, naming the op", () => {
    const tape = Tape.make()
    const a = tape.parameter(Tensor.fromArray([1, 2], [2], { dtype: "float64" }))
    const outside = mul(a, a)
    const x = add(a, a)
    const y = Recompute.recompute("leaky", [x], (inputs) => mul(inputs[0] as Tensor.Tensor, outside))
    expect(() => tape.backward(sumAll(y))).toThrow(/made outside the recomputed function/)
  })

  test("without a recording tape the function just runs", () => {
    const x = Tensor.fromArray([1, 2, 3], [3], { dtype: "float64" })
    const y = Recompute.recompute("plain", [x], (inputs) => mul(inputs[0] as Tensor.Tensor, inputs[0] as Tensor.Tensor))
    expect(Array.from(y.data)).toEqual([1, 4, 9])
    expect(y.requiresGrad).toBe(false)
  })
})
