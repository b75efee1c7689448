// The attention side's typed channels: the laid embedding, cross-entropy and self-attention give
// the plain functions' values bit for bit with the layouts their collectives made (SP rows or
// whole rows; the loss partial over cp), and refuse inputs whose layout breaks a precondition.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import * as RingExchange from "../../src/attention/RingExchange.js"
import * as SelfAttention from "../../src/attention/SelfAttention.js"
import * as VocabParallel from "../../src/attention/VocabParallel.js"
import * as Group from "../../src/comm/Group.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Job from "../../src/runtime/Job.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : ""))) : "(succeeded)"
const tokens = (n: number, over: ReadonlyArray<TensorLayout.Shard> = []) => TensorLayout.make([TensorLayout.dim("tokens", n, over)])

describe("typed channels of the attention side", () => {
  test("the laid embedding equals the plain one and is in SP rows or whole rows", async () => {
    const tp = 2
    const table = uniform([8, 3], 1)
    const ids = Int32Array.from([0, 5, 7, 2])
    for (const sp of [false, true]) {
      const out = await Job.runPromise({ world: tp }, (rank) =>
        Effect.gen(function* () {
          const shard = Shape.rows(table, rank * 4, rank * 4 + 4)
          const plain = yield* VocabParallel.embedding(shard, ids, 8, Group.world(tp), sp)
          const laid = yield* VocabParallel.embeddingLaid(shard, ids, tokens(4), 8, Group.world(tp), sp)
          return { same: Tensor.toArray(plain), laid: Tensor.toArray(laid.tensor), layout: TensorLayout.format(laid.layout) }
        }),
      )
      for (const r of out) {
        expect(r.laid).toEqual(r.same)
        expect(r.layout).toBe(sp ? "[tokens 4/tp2, hidden 3] sequence-parallel" : "[tokens 4, hidden 3]")
      }
    }
  })

  test("the laid cross-entropy gives the loss partial over the rows' axes, and refuses logits whose vocabulary is whole", async () => {
    const tp = 2
    const logits = uniform([4, 8], 2, -3, 3)
    const targets = Int32Array.from([1, 6, -100, 3])
    const vocab = (split: boolean) =>
      TensorLayout.make([TensorLayout.dim("tokens", 8, [{ axis: "cp", size: 2 }]), TensorLayout.dim("vocab", 8, split ? [{ axis: "tp", size: tp }] : [])])
    const out = await Job.runPromise({ world: tp }, (rank) =>
      Effect.gen(function* () {
        const mine = Shape.transpose(Shape.rows(Shape.transpose(logits, 0, 1), rank * 4, rank * 4 + 4), 0, 1)
        const plain = yield* VocabParallel.crossEntropy(mine, targets, 8, Group.world(tp))
        const laid = yield* VocabParallel.crossEntropyLaid(TensorLayout.attach(mine, vocab(true)), targets, 8, Group.world(tp))
        return { plain: Tensor.item(plain), laid: Tensor.item(laid.tensor), layout: TensorLayout.format(laid.layout) }
      }),
    )
    for (const r of out) {
      expect(r.laid).toBe(r.plain)
      expect(r.layout).toBe("[] partial over cp")
    }
    const whole = TensorLayout.attach(logits, vocab(false))
    const exit = await Effect.runPromise(Effect.exit(Job.run({ world: tp, timeoutMs: 500 }, () => VocabParallel.crossEntropyLaid(whole, targets, 8, Group.world(tp)))))
    expect(failureOf(exit)).toContain(
      "vocabParallelCrossEntropy: needs complete rows in sequence order with the vocabulary split over tp but the logits are [tokens 8/cp2, vocab 8]",
    )
  })

  test("laid self-attention under tp 2 x cp 2 with SP equals the plain forward and keeps the SP rows; the ring refuses rows not split over cp", async () => {
    const world = 4
    const config = (tp: Group.Group, cp: Group.Group, exchange: "ring" | "allgather"): SelfAttention.AttentionConfig => ({
      batch: 1,
      seq: 8,
      heads: 2,
      kvHeads: 2,
      headDim: 2,
      tp,
      cp,
      sequenceParallel: true,
      cpExchange: exchange,
    })
    const w = { wq: uniform([4, 4], 3), wk: uniform([4, 4], 4), wv: uniform([4, 4], 5), wo: uniform([4, 4], 6) }
    const rows = TensorLayout.make([
      TensorLayout.dim("tokens", 8, [
        { axis: "cp", size: 2 },
        { axis: "tp", size: 2 },
      ]),
      TensorLayout.dim("hidden", 4),
    ])
    for (const exchange of ["ring", "allgather"] as const) {
      const out = await Job.runPromise({ world }, (rank) =>
        Effect.gen(function* () {
          const tpRank = rank % 2
          const cpRank = Math.floor(rank / 2)
          const tp = Group.make("tp", [cpRank * 2, cpRank * 2 + 1])
          const cp = Group.make("cp", [tpRank, tpRank + 2])
          const shards = {
            wq: Shape.transpose(Shape.rows(Shape.transpose(w.wq, 0, 1), tpRank * 2, tpRank * 2 + 2), 0, 1),
            wk: Shape.transpose(Shape.rows(Shape.transpose(w.wk, 0, 1), tpRank * 2, tpRank * 2 + 2), 0, 1),
            wv: Shape.transpose(Shape.rows(Shape.transpose(w.wv, 0, 1), tpRank * 2, tpRank * 2 + 2), 0, 1),
            wo: Shape.rows(w.wo, tpRank * 2, tpRank * 2 + 2),
          }
          const x = uniform([2, 4], 10 + rank)
          const plain = yield* SelfAttention.forward(x, shards, config(tp, cp, exchange), cpRank)
          const laid = yield* SelfAttention.forwardLaid(TensorLayout.attach(x, rows), shards, config(tp, cp, exchange), cpRank)
          return { plain: Tensor.toArray(plain), laid: Tensor.toArray(laid.tensor), layout: TensorLayout.format(laid.layout) }
        }),
      )
      for (const r of out) {
        expect(r.laid).toEqual(r.plain)
        expect(r.layout).toBe(TensorLayout.format(rows))
      }
    }
    const whole = TensorLayout.attach(Tensor.zeros([4, 2]), tokens(4))
    const exit = await Effect.runPromise(Effect.exit(Job.run({ world: 2, timeoutMs: 500 }, () => RingExchange.ringAllGatherLaid(Group.world(2), whole))))
    expect(failureOf(exit)).toContain("ringAllGather: over cp needs rows split over cp but the tensor is [tokens 4]")
  })
})
