// End-of-document tokens (Documents): the marks and the left-out targets equal an independent
// reading of Megatron's GPT dataset on random micro-batches (its attention mask: lower-triangular,
// then every row after an EOD cut off from the columns up to it; its position ids: the running
// subtraction after each EOD; its loss mask: 0 where the input is the EOD); and the head's
// shares (Head.shareOfMean) over any split of a micro-batch's rows add up to the mean over its
// kept targets, however many are left out.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Head from "../../src/model/Head.js"
import * as ModelContext from "../../src/model/ModelContext.js"
import * as Documents from "../../src/train/Documents.js"

const eod = 2

/** B sequences of S ids in 0..4 (so EODs are frequent, runs of them included). */
const batchArb = fc
  .record({ b: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 9 }) })
  .chain(({ b, s }) => fc.record({ b: fc.constant(b), s: fc.constant(s), tokens: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: b * s, maxLength: b * s }) }))

/** Megatron's reading of one sequence: visible[q][k], position ids and the loss mask. */
const megatron = (tokens: ReadonlyArray<number>) => {
  const s = tokens.length
  const visible = Array.from({ length: s }, (_, q) => Array.from({ length: s }, (_, k) => k <= q))
  const positions = Array.from({ length: s }, (_, i) => i)
  let previous = 0
  tokens.forEach((t, i) => {
    if (t !== eod) return
    for (let q = i + 1; q < s; q++) for (let k = 0; k <= i; k++) (visible[q] as Array<boolean>)[k] = false
    for (let q = i + 1; q < s; q++) positions[q] = (positions[q] as number) - (i + 1 - previous)
    previous = i + 1
  })
  return { visible, positions, lossMask: tokens.map((t) => (t === eod ? 0 : 1)) }
}

describe("end-of-document tokens", () => {
  test("first keys, positions and left-out targets are Megatron's masks, position ids and loss mask", () => {
    fc.assert(
      fc.property(batchArb, fc.boolean(), fc.boolean(), ({ b, s, tokens }, mask, restart) => {
        const ids = Int32Array.from(tokens)
        const targets = Int32Array.from(tokens, (t) => t + 10)
        const settings = { eod, resetAttentionMask: mask, resetPositionIds: restart, eodMaskLoss: true }
        const marks = Documents.marksOf(settings, ids, s)
        const kept = Documents.maskedTargets(settings, ids, targets)
        expect(marks === undefined).toBe(!mask && !restart)
        for (let bi = 0; bi < b; bi++) {
          const m = megatron(tokens.slice(bi * s, (bi + 1) * s))
          for (let q = 0; q < s; q++) {
            const first = marks?.firstKeys?.[bi * s + q]
            expect(first === undefined).toBe(!mask)
            if (first !== undefined) for (let k = 0; k < s; k++) expect(first <= k && k <= q).toBe(m.visible[q]?.[k])
            expect(marks?.positions?.[bi * s + q] ?? q).toBe(restart ? m.positions[q] : q)
            expect(kept[bi * s + q]).toBe(m.lossMask[q] === 0 ? ModelContext.ignoredTarget : (targets[bi * s + q] as number))
          }
        }
        // Without --eod-mask-loss the targets are the data's.
        expect(Documents.maskedTargets({ ...settings, eodMaskLoss: false }, ids, targets)).toBe(targets)
      }),
      { numRuns: 300 },
    )
  })

  test("the cp ranks' shares of the head's loss add up to the mean over the micro-batch's kept targets", () => {
    const rowsArb = fc.array(fc.record({ loss: fc.double({ min: 0, max: 5, noNaN: true }), kept: fc.boolean() }), { minLength: 1, maxLength: 24 })
    fc.assert(
      fc.property(rowsArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), (rows, parts, per) => {
        const labels = rows.filter((r) => r.kept).length
        let total = 0
        for (let p = 0; p < parts; p++) {
          const mine = rows.filter((_, i) => i % parts === p)
          const kept = mine.filter((r) => r.kept)
          // A rank's cross-entropy: the mean over its kept rows (0 when none).
          const mean = kept.length === 0 ? 0 : kept.reduce((a, r) => a + r.loss, 0) / kept.length
          total +=
            mean *
            Head.shareOfMean(
              Int32Array.from(mine, (r) => (r.kept ? 1 : ModelContext.ignoredTarget)),
              labels,
              per,
            )
        }
        const expected = labels === 0 ? 0 : rows.filter((r) => r.kept).reduce((a, r) => a + r.loss, 0) / labels / per
        expect(Math.abs(total - expected)).toBeLessThanOrEqual(1e-12 * (1 + expected))
      }),
      { numRuns: 300 },
    )
  })
})
