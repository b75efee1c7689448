// Sliding-window attention (--sliding-window W): in a one-layer model (attention, then the MoE
// layer, each token's own), a token's output row equals the last row of its window (the W tokens
// ending at it) run alone as a sequence: the window is all it sees (RoPE is relative, so where the
// window starts does not matter). A window at least as long as the sequence is no window at all,
// bit for bit; a shorter one changes the rows past it. With packed documents the window stops at
// the document's start (the later of the two). Float64, one rank, grouped-query and multi-latent
// attention.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Job from "../../src/runtime/Job.js"
import * as Documents from "../../src/train/Documents.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import { contextOf, maxDifference, paramsOf, rowsOf } from "./oneRankRows.js"

const base: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 1, hidden: 8, heads: 2, kvHeads: 1, ffn: 8, moeFfn: 4, experts: 4, topk: 2, seq: 10, vocab: 11 }
const latent: ModelConfig.ModelConfig = { ...base, kvHeads: 2, mla: { qLoraRank: 0, kvLoraRank: 8, qkHeadDim: 4, qkPosEmbHeadDim: 2, vHeadDim: 4 } }

const idsArb = fc.array(fc.integer({ min: 0, max: 10 }), { minLength: base.seq, maxLength: base.seq }).map((a) => Int32Array.from(a))

describe("sliding-window attention", () => {
  test.each([
    ["grouped-query attention", base],
    ["multi-latent attention", latent],
  ])(
    "%s: each token's row is its window's run alone; a window as long as the sequence is none; documents cut it",
    async (_, model) => {
      const param = paramsOf(model)
      const width = model.hidden
      await fc.assert(
        fc.asyncProperty(idsArb, fc.integer({ min: 1, max: base.seq - 1 }), async (ids, window) => {
          const windowed = { ...model, slidingWindow: window }
          const marks = Documents.marksOf({ eod: 0, resetAttentionMask: true, resetPositionIds: false, eodMaskLoss: false }, ids, model.seq)
          const first = marks?.firstKeys as Int32Array
          // Each token run alone from where its view starts: its window's first token, or (with documents) the later of that and its document's first.
          const aloneFrom = (startOf: (i: number) => number) =>
            Effect.forEach(Array.from(ids.keys()), (i) => rowsOf(contextOf({ ...model, seq: i + 1 - startOf(i) }, param), ids.slice(startOf(i), i + 1)))
          const [rows, plain, whole, both, alone, aloneInDocuments] = await Job.runPromise({ world: 1 }, () =>
            Effect.all([
              rowsOf(contextOf(windowed, param), ids),
              rowsOf(contextOf(model, param), ids),
              rowsOf(contextOf({ ...model, slidingWindow: model.seq }, param), ids),
              rowsOf(contextOf(windowed, param, marks), ids),
              aloneFrom((i) => Math.max(0, i - window + 1)),
              aloneFrom((i) => Math.max(first[i] as number, i - window + 1)),
            ]),
          ).then((r) => r[0] as [Array<number>, Array<number>, Array<number>, Array<number>, Array<Array<number>>, Array<Array<number>>])
          expect(whole).toEqual(plain)
          const lastRow = (r: Array<number>) => r.slice(r.length - width)
          ids.forEach((_, i) => {
            expect(maxDifference(rows.slice(i * width, (i + 1) * width), lastRow(alone[i] as Array<number>))).toBeLessThan(1e-12)
            expect(maxDifference(both.slice(i * width, (i + 1) * width), lastRow(aloneInDocuments[i] as Array<number>))).toBeLessThan(1e-12)
          })
          expect(maxDifference(rows.slice(window * width), plain.slice(window * width))).toBeGreaterThan(1e-9)
        }),
        { numRuns: 10 },
      )
    },
    60_000,
  )
})
