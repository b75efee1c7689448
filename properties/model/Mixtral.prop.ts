// The model as operators with declared layouts: a chunk runs through every edge on random small
// mappings (tp, cp, ep, SP on with tp > 1) and ends in the loss layout; an operator built with
// the wrong sequence-parallel setting fails at the edge it produced, naming itself and both
// layouts; neighbours that disagree fail naming the producer before anything runs; hidden rows
// handed over in another layout fail at the consumer's input.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as Operator from "../../src/dataflow/Operator.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Block from "../../src/model/Block.js"
import * as Embedding from "../../src/model/Embedding.js"
import * as Mixtral from "../../src/model/Mixtral.js"
import type * as ModelContext from "../../src/model/ModelContext.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"

const model: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 2, hidden: 8, heads: 4, kvHeads: 2, ffn: 8, moeFfn: 4, experts: 4, seq: 8, vocab: 8, moeEvery: 2 }
const microBatch = 2

/** Rank `rank`'s context under `parallel` (all layers on this rank), with its parameter shards. */
const contextOf = (parallel: ParallelConfig.ParallelConfig, rank: number, sequenceParallel?: boolean): ModelContext.ModelContext => {
  const place = Folding.place(Folding.make(parallel), rank)
  const params = RankParams.make(Params.specs(model), () => true, place, parallel.sizes, 1, "float64")
  const g = (f: Parameters<typeof Group.ofFamily>[1]) => Group.ofFamily(parallel, f, rank)
  return {
    sizes: model,
    microBatch,
    groups: { tp: g("tp"), cp: g("cp"), tpCp: g("tp-cp"), expert: { ep: g("ep"), etp: g("etp"), etpEp: g("etp-ep") } },
    cpRank: place.cp,
    sequenceParallel: sequenceParallel ?? parallel.sizes.tp > 1,
    microBatchesPerStep: 1,
    auxLossCoeff: 0.01,
    param: (name) => {
      const held = params.get(name)
      if (held === undefined) throw new Error(`no parameter ${name}`)
      return held.value
    },
  }
}

/** Token ids and targets of this rank's cp rows (any ids in the vocabulary will do). */
const tokensOf = (c: ModelContext.ModelContext): ModelContext.Tokens => {
  const n = (microBatch * model.seq) / c.groups.cp.ranks.length
  return { ids: Int32Array.from({ length: n }, (_, i) => (i * 3 + c.cpRank) % model.vocab), targets: Int32Array.from({ length: n }, (_, i) => (i * 5 + 1) % model.vocab) }
}

const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : r._tag === "Die" ? String(r.defect) : ""))) : "(succeeded)"

describe("the Mixtral-like model as operators", () => {
  test("a whole-model chunk passes every edge check on random mappings and ends in the loss layout", async () => {
    const mappings = fc.record({ tp: fc.constantFrom(1, 2), cp: fc.constantFrom(1, 2), ep: fc.constantFrom(1, 2) }).filter((m) => m.ep <= m.tp * m.cp)
    await fc.assert(
      fc.asyncProperty(mappings, async (m) => {
        const parallel = ParallelConfig.make({ world: m.tp * m.cp, tp: m.tp, cp: m.cp, ep: m.ep, etp: 1 })
        const out = await Job.runPromise({ world: parallel.world, timeoutMs: 5000 }, (rank) =>
          Effect.gen(function* () {
            const c = contextOf(parallel, rank)
            const hidden = yield* Mixtral.forward(c, { layers: [0, 2], isFirst: true, isLast: false }, undefined, tokensOf(c))
            const loss = yield* Mixtral.forward(c, { layers: [0, 0], isFirst: false, isLast: true }, hidden.hidden?.tensor, tokensOf(c))
            return { hidden: TensorLayout.format(hidden.hidden?.layout ?? TensorLayout.make([])), loss: Tensor.item(loss.loss as Tensor.Tensor), rows: hidden.expertRows.length }
          }),
        )
        const rows = `tokens 16${m.cp > 1 ? "/cp2" : ""}${m.tp > 1 ? "/tp2" : ""}`
        for (const r of out) {
          expect(r.hidden).toBe(`[${rows}, hidden 8]${m.tp > 1 ? " sequence-parallel" : ""}`)
          expect(Number.isFinite(r.loss)).toBe(true)
          expect(r.rows).toBe(1) // layer 0 is MoE, layer 1 dense
        }
      }),
      { numRuns: 6 },
    )
  }, 60_000)

  test("an embedding run without sequence parallelism where the model declares it fails at its own output edge", async () => {
    const parallel = ParallelConfig.make({ world: 2, tp: 2 })
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 2, timeoutMs: 2000 }, (rank) => {
          const declared = contextOf(parallel, rank)
          const wrong = contextOf(parallel, rank, false)
          const chunk = Operator.andThen(Embedding.make(wrong, Mixtral.layouts(declared).hidden), Block.attention(declared, 0, Mixtral.layouts(declared).hidden))
          return chunk.run(tokensOf(declared))
        }),
      ),
    )
    expect(failureOf(exit)).toContain("operator embedding declares its output as [tokens 16/tp2, hidden 8] sequence-parallel but produced [tokens 16, hidden 8]")
  })

  test("neighbours that declare different layouts fail naming the producer; rows in another layout fail at the consumer's input", async () => {
    const parallel = ParallelConfig.make({ world: 2, tp: 2 })
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 2, timeoutMs: 2000 }, (rank) => {
          const sp = contextOf(parallel, rank)
          const noSp = contextOf(parallel, rank, false)
          return Operator.andThen(Embedding.make(noSp, Mixtral.layouts(noSp).hidden), Block.attention(sp, 0, Mixtral.layouts(sp).hidden)).run(tokensOf(sp))
        }),
      ),
    )
    expect(failureOf(exit)).toContain(
      "operator embedding declares its output as [tokens 16, hidden 8] but the next operator, attention (layer 0), declares its input as [tokens 16/tp2, hidden 8] sequence-parallel",
    )
    const c = contextOf(ParallelConfig.make({ world: 1 }), 0)
    const full = Mixtral.layouts(c).hidden
    const moe = Block.ffn(c, 0, full)
    expect(moe.name).toBe("moe (layer 0)")
    const exit2 = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 1 }, () =>
          moe.run({ tensor: Tensor.zeros([16, 8], { dtype: "float64" }), layout: TensorLayout.inOrder(full, "permuted"), aux: Tensor.zeros([]), expertRows: [] }),
        ),
      ),
    )
    expect(failureOf(exit2)).toContain("operator moe (layer 0) declares its input as [tokens 16, hidden 8] but was given [tokens 16, hidden 8] token-permuted")
  })
})
