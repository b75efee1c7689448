// Vocab-parallel embedding and cross-entropy equal the single-rank ops, value and gradients.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as VocabParallel from "../../src/attention/VocabParallel.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Gather from "../../src/tensor/ops/Gather.js"
import * as Loss from "../../src/tensor/ops/Loss.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const near = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i] as number, 10))

describe("vocab-parallel embedding and cross-entropy", () => {
  test("equal the single-rank ops for tp 1, 2, 4, with and without sequence parallelism", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(1, 2, 4), fc.boolean(), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 3 }), async (tp, sp, seed, perTp) => {
        const vocab = 4 * tp
        const n = tp * perTp
        const h = 3
        const table = uniform([vocab, h], seed)
        const logits = uniform([n, vocab], seed + 1, -3, 3)
        const ids = Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % vocab)
        const targets = Int32Array.from({ length: n }, (_, i) => (i % 3 === 2 ? -100 : (i * 5 + seed) % vocab))
        const w = uniform([n, h], seed + 2)
        // Reference on one rank.
        const tape = Tape.make()
        const tableRef = tape.parameter(Tensor.detachCopy(table))
        const logitsRef = tape.parameter(Tensor.detachCopy(logits))
        const emb = Gather.embedding(tableRef, ids)
        const ce = Loss.crossEntropy(logitsRef, targets)
        tape.backward(Elementwise.add(Reduce.sumAll(Elementwise.mul(emb, w)), ce))
        const results = await Job.runPromise({ world: tp }, (rank) =>
          Effect.gen(function* () {
            const group = Group.world(tp)
            const t2 = Tape.make()
            const tableShard = t2.parameter(Shape.rows(table, rank * 4, rank * 4 + 4))
            const logitShard = t2.parameter(ParallelLinear.columnShard(logits, rank, tp))
            const e = yield* VocabParallel.embedding(tableShard, ids, vocab, group, sp)
            const wMine = sp ? Shape.rows(w, rank * perTp, (rank + 1) * perTp) : w
            const embLoss = Elementwise.scale(Reduce.sumAll(Elementwise.mul(e, wMine)), sp ? 1 : 1 / tp)
            const loss = yield* VocabParallel.crossEntropy(logitShard, targets, vocab, group)
            yield* t2.backwardEffect(Elementwise.add(embLoss, loss))
            return {
              e: Tensor.toArray(e),
              loss: Tensor.item(loss),
              dTable: Tensor.toArray(tableShard.grad as Tensor.Tensor),
              dLogits: Tensor.toArray(logitShard.grad as Tensor.Tensor),
            }
          }),
        )
        results.forEach((r, rank) => {
          expect(r.loss).toBeCloseTo(Tensor.item(ce), 10)
          near(r.e, Tensor.toArray(sp ? Shape.rows(emb, rank * perTp, (rank + 1) * perTp) : emb))
          near(r.dTable, Tensor.toArray(Shape.rows(tableRef.grad as Tensor.Tensor, rank * 4, rank * 4 + 4)))
          near(r.dLogits, Tensor.toArray(ParallelLinear.columnShard(logitsRef.grad as Tensor.Tensor, rank, tp)))
        })
      }),
      { numRuns: 30 },
    )
  })
})
