// Packed documents: with attention kept within each document (Documents.marksOf's first keys,
// and with or without RoPE's positions restarted), the model's output rows of a sequence packed
// from several documents equal, row for row, those of each document run alone as a sequence of
// its own (float64, one rank; grouped-query and multi-latent attention, MoE and dense layers).
// Without the first keys the rows of every document after the first differ: the property sees
// the mask; and with RoPE's positions restarted but no mask they differ too (the positions reach
// RoPE; within a document RoPE is relative, so with the mask they change nothing but rounding).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Job from "../../src/runtime/Job.js"
import * as Documents from "../../src/train/Documents.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import { contextOf, maxDifference, paramsOf, rowsOf } from "./oneRankRows.js"

const base: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 2, hidden: 8, heads: 2, kvHeads: 1, ffn: 8, moeFfn: 4, experts: 4, topk: 2, seq: 12, vocab: 11, moeEvery: 2 }
const latent: ModelConfig.ModelConfig = { ...base, heads: 2, kvHeads: 2, mla: { qLoraRank: 6, kvLoraRank: 8, qkHeadDim: 4, qkPosEmbHeadDim: 2, vHeadDim: 4 } }
const eod = 0

/** A packed sequence: documents of random lengths, each ended by the EOD but maybe the last. */
const packedArb = fc
  .array(fc.integer({ min: 1, max: 10 }), { minLength: base.seq, maxLength: base.seq })
  .chain((words) => fc.tuple(fc.constant(words), fc.array(fc.boolean(), { minLength: base.seq, maxLength: base.seq })))
  .map(([words, ends]) => Int32Array.from(words, (w, i) => (ends[i] === true && i % 3 !== 1 ? eod : w)))

/** The documents of a packed sequence: [start, end) runs, each ending at its EOD or the end. */
const documentsIn = (ids: Int32Array): Array<[number, number]> => {
  const out: Array<[number, number]> = []
  let start = 0
  ids.forEach((id, i) => {
    if (id === eod || i === ids.length - 1) {
      out.push([start, i + 1])
      start = i + 1
    }
  })
  return out
}

describe("documents packed into one sequence", () => {
  test.each([
    ["grouped-query attention", base],
    ["multi-latent attention", latent],
  ])(
    "%s: each document's rows equal the document run alone (positions restarted or not); without the mask later documents differ",
    async (_, model) => {
      const param = paramsOf(model)
      await fc.assert(
        fc.asyncProperty(packedArb, fc.boolean(), async (ids, resetPositions) => {
          const settings = { eod, resetAttentionMask: true, resetPositionIds: resetPositions, eodMaskLoss: false }
          const marks = Documents.marksOf(settings, ids, model.seq)
          const restarted = Documents.marksOf({ ...settings, resetAttentionMask: false, resetPositionIds: true }, ids, model.seq)
          const width = model.hidden
          const [packed, unmasked, positionsOnly, alone] = await Job.runPromise({ world: 1 }, () =>
            Effect.all([
              rowsOf(contextOf(model, param, marks), ids),
              rowsOf(contextOf(model, param), ids),
              rowsOf(contextOf(model, param, restarted), ids),
              Effect.forEach(documentsIn(ids), ([start, end]) => rowsOf(contextOf({ ...model, seq: end - start }, param), ids.slice(start, end))),
            ]),
          ).then((r) => r[0] as [Array<number>, Array<number>, Array<number>, Array<Array<number>>])
          const docs = documentsIn(ids)
          docs.forEach(([start, end], d) => {
            const own = packed.slice(start * width, end * width)
            expect(maxDifference(own, alone[d] as Array<number>)).toBeLessThan(1e-12)
            // The first document sees nothing before it either way; a later one sees the others without the mask.
            if (d > 0) expect(maxDifference(unmasked.slice(start * width, end * width), own)).toBeGreaterThan(1e-9)
            if (d > 0) expect(maxDifference(positionsOnly.slice(start * width, end * width), unmasked.slice(start * width, end * width))).toBeGreaterThan(1e-9)
          })
        }),
        { numRuns: 12 },
      )
    },
    60_000,
  )
})
