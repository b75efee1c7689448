// Blends of token files (--data-blend; Megatron-LM's --train-data-path W PREFIX ...): sample i's
// dataset and its number there are Megatron-Core's blending order, recomputed here whole from its
// definition (the largest weight x max(i, 1) - count, the lowest dataset on a tie), at any i,
// asked in any order (the snapshots of the counts change nothing); after any number of samples no
// dataset is a whole sample ahead of its share, and none is K - 1 or more behind for K datasets
// (the most the others can be ahead by; a lag above one sample occurs: weights 19, 1, 1, 14 at
// 1,275 samples lag 1.14); a blend of one file is the file's own stream. A micro-batch of a blend reads,
// for each sequence, that dataset's window of its own shuffled order (seeded as Blend says).
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Blend from "../../src/train/Blend.js"
import * as Data from "../../src/train/Data.js"
import { mix } from "../../src/train/Mix.js"
import * as TokenFile from "../../src/train/TokenFile.js"
import * as WindowOrder from "../../src/train/WindowOrder.js"

/** The blending order of `n` samples under normalized `weights`, written out from its definition. */
const order = (weights: ReadonlyArray<number>, n: number): Array<readonly [number, number]> => {
  const counts = weights.map(() => 0)
  return Array.from({ length: n }, (_, i) => {
    const errors = weights.map((w, d) => w * Math.max(i, 1) - (counts[d] as number))
    const d = errors.indexOf(Math.max(...errors))
    counts[d] = (counts[d] as number) + 1
    return [d, (counts[d] as number) - 1] as const
  })
}

const weightsArb = fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 4 })

describe("blends", () => {
  test("Megatron-Core's blending order at any sample, asked in any order; never a sample ahead of a share", () => {
    fc.assert(
      fc.property(weightsArb, fc.array(fc.integer({ min: 0, max: 2999 }), { minLength: 1, maxLength: 20 }), (raw, asked) => {
        const blend = { weights: raw.map((w) => w / raw.reduce((a, b) => a + b, 0)) }
        const expected = order(blend.weights, 3000)
        for (const i of asked) expect(Blend.placeOf(blend, i), `sample ${i}`).toEqual(expected[i])
        const n = 1 + Math.max(...asked)
        blend.weights.forEach((w, d) => {
          const held = expected.slice(0, n).filter(([k]) => k === d).length
          expect(held - w * n).toBeLessThan(1)
          expect(w * n - held).toBeLessThan(Math.max(1, blend.weights.length - 1))
        })
      }),
      { numRuns: 60 },
    )
    expect(Array.from({ length: 5 }, (_, i) => Blend.placeOf({ weights: [1] }, i))).toEqual([0, 1, 2, 3, 4].map((i) => [0, i]))
  })

  test("a micro-batch of a blend reads each sequence's dataset's window of its own order", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-blend-"))
    const seq = 8
    // Dataset d's ids are 10 d + (position mod 10): a window names its file and its start.
    const files = [300, 500, 420].map((n, d) => {
      const file = path.join(dir, `d${d}.bin`)
      writeFileSync(file, Buffer.from(new Uint16Array(Array.from({ length: n }, (_, k) => 10 * d + (k % 10))).buffer))
      const inspected = TokenFile.inspect(file, "uint16", seq, 40, "data-blend")
      if (!("path" in inspected)) throw new Error("not a token file")
      return inspected
    })
    const blend = Blend.make(files, [2, 5, 3])
    const seed = 11
    const step = 3
    const globalBatch = 8
    const mb = Data.microBatch({ seed, step, dpRank: 0, index: 0, microBatch: globalBatch, microBatches: 1, globalBatch, seq, vocab: 40, file: blend })
    const expected = order(blend.weights, (step + 1) * globalBatch)
    for (let b = 0; b < globalBatch; b++) {
      const [d, j] = expected[step * globalBatch + b] as readonly [number, number]
      const file = files[d] as TokenFile.TokenFile
      const window = WindowOrder.windowOf(d === 0 ? seed : mix(seed, d), j, TokenFile.windows(file, seq))
      const tokens = Array.from(mb.tokens.subarray(b * seq, (b + 1) * seq))
      expect(tokens).toEqual(Array.from({ length: seq }, (_, t) => 10 * d + ((window * seq + t) % 10)))
    }
  })
})
