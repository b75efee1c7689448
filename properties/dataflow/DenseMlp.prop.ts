// The tensor-parallel SwiGLU MLP equals one rank, forward and backward, SP on and off.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as DenseMlp from "../../src/dataflow/DenseMlp.js"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const near = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i] as number, 10))

describe("dense MLP under TP", () => {
  test("equals one rank, output and gradients, with and without sequence parallelism", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(1, 2, 4), fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 1000 }), async (tp, sp, perTp, seed) => {
        const rows = tp * perTp
        const [h, f] = [3, 2 * tp]
        const x = uniform([rows, h], seed)
        const w = { wGate: uniform([h, f], seed + 1), wUp: uniform([h, f], seed + 2), wDown: uniform([f, h], seed + 3) }
        const r = uniform([rows, h], seed + 4)
        const one = Group.make("one", [0])
        const tape = Tape.make()
        const refX = tape.parameter(Tensor.detachCopy(x))
        const refW = { wGate: tape.parameter(Tensor.detachCopy(w.wGate)), wUp: tape.parameter(Tensor.detachCopy(w.wUp)), wDown: tape.parameter(Tensor.detachCopy(w.wDown)) }
        const [refOut] = await Job.runPromise({ world: 1 }, () =>
          Effect.gen(function* () {
            const out = yield* DenseMlp.forward(refX, refW, { tp: one, sequenceParallel: false })
            yield* tape.backwardEffect(Reduce.sumAll(Elementwise.mul(out, r)))
            return out
          }),
        )
        const results = await Job.runPromise({ world: tp }, (rank) =>
          Effect.gen(function* () {
            const t = Tape.make()
            const mine = t.parameter(sp ? Shape.rows(x, rank * perTp, (rank + 1) * perTp) : Tensor.detachCopy(x))
            const shards = {
              wGate: t.parameter(ParallelLinear.columnShard(w.wGate, rank, tp)),
              wUp: t.parameter(ParallelLinear.columnShard(w.wUp, rank, tp)),
              wDown: t.parameter(ParallelLinear.rowShard(w.wDown, rank, tp)),
            }
            const out = yield* DenseMlp.forward(mine, shards, { tp: Group.world(tp), sequenceParallel: sp })
            const weight = sp ? Shape.rows(r, rank * perTp, (rank + 1) * perTp) : r
            yield* t.backwardEffect(Elementwise.scale(Reduce.sumAll(Elementwise.mul(out, weight)), sp ? 1 : 1 / tp))
            return {
              out: Tensor.toArray(out),
              dx: Tensor.toArray(mine.grad as Tensor.Tensor),
              dGate: Tensor.toArray(shards.wGate.grad as Tensor.Tensor),
              dDown: Tensor.toArray(shards.wDown.grad as Tensor.Tensor),
            }
          }),
        )
        results.forEach((res, rank) => {
          const pick = (t: Tensor.Tensor) => Tensor.toArray(sp ? Shape.rows(t, rank * perTp, (rank + 1) * perTp) : t)
          near(res.out, pick(refOut as Tensor.Tensor))
          near(res.dx, pick(refX.grad as Tensor.Tensor))
          near(res.dGate, Tensor.toArray(ParallelLinear.columnShard(refW.wGate.grad as Tensor.Tensor, rank, tp)))
          near(res.dDown, Tensor.toArray(ParallelLinear.rowShard(refW.wDown.grad as Tensor.Tensor, rank, tp)))
        })
      }),
      { numRuns: 30 },
    )
  })
})
