// Custom pipeline layouts (--pipeline-layout, Megatron-Core's --pipeline-model-parallel-layout):
// any per-stage layer counts written as a layout, with Megatron's shorthands (t*N, (...)*N for
// equal stages in a row, cosmetic commas), read back as those counts and that vpp; the partition
// they make holds each stage's count in stage order; Megatron's worked examples read as its docs
// say; what pleat cannot place is refused naming why.
import * as Result from "effect/Result"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Partition from "../../src/pipeline/Partition.js"
import * as PipelineLayout from "../../src/pipeline/PipelineLayout.js"

/** Stage i's text: E first, t x count, m x mtp and L last. */
const stageText = (count: number, i: number, stages: number, mtp: number, short: boolean): string => {
  const t = short && count > 1 ? `t*${count}` : "t".repeat(count)
  return `${i === 0 ? "E" : ""}${t}${i === stages - 1 ? `${"m".repeat(mtp)}L` : ""}`
}

/** A layout of `counts`, runs of equal middle stages written (..|)*N where `short`, commas sprinkled. */
const layoutText = (counts: ReadonlyArray<number>, mtp: number, short: boolean, commas: boolean): string => {
  const parts: Array<string> = []
  let i = 0
  while (i < counts.length) {
    let run = 1
    while (short && i > 0 && i + run < counts.length - 1 && counts[i + run] === counts[i]) run++
    const one = stageText(counts[i] as number, i, counts.length, mtp, short)
    parts.push(run > 1 ? `(${one}|)*${run}` : `${one}|`)
    i += run
  }
  const text = parts.join(commas ? "," : "").replace(/\|$/, "")
  return text
}

const layouts = fc
  .record({
    pp: fc.integer({ min: 1, max: 4 }),
    vpp: fc.integer({ min: 1, max: 3 }),
    mtp: fc.integer({ min: 0, max: 2 }),
    short: fc.boolean(),
    commas: fc.boolean(),
    seed: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 12, maxLength: 12 }),
  })
  .map((r) => ({ ...r, vpp: r.pp === 1 ? 1 : r.vpp }))
  .map((r) => ({ ...r, counts: r.seed.slice(0, r.pp * r.vpp) }))
  .filter((r) => r.counts.reduce((a, c) => a + c, 0) > 0)

describe("pipeline layouts", () => {
  test("any per-stage counts, written with or without Megatron's shorthands, read back; the partition holds them in stage order", () => {
    fc.assert(
      fc.property(layouts, (r) => {
        const layers = r.counts.reduce((a, c) => a + c, 0)
        const text = layoutText(r.counts, r.mtp, r.short, r.commas)
        const parsed = PipelineLayout.parse(text, r.pp, layers, r.mtp)
        if (Result.isFailure(parsed)) throw new Error(`${text}: ${parsed.failure.reason}`)
        expect(parsed.success).toEqual({ stageLayers: r.counts, vpp: r.vpp })
        const part = Partition.make({ layers, pp: r.pp, vpp: r.vpp, stageLayers: parsed.success.stageLayers })
        let next = 0
        r.counts.forEach((count, stage) => {
          const { pp, chunk } = Partition.holder(part, stage)
          expect([pp, chunk]).toEqual([stage % r.pp, Math.floor(stage / r.pp)])
          const { start, end } = Partition.layersOf(part, pp, chunk)
          expect([start, end - start]).toEqual([next, count])
          next = end
        })
        expect(next).toBe(layers)
      }),
      { numRuns: 400 },
    )
  })

  test("Megatron's examples: repeats unrolled parentheses first; DeepSeek-V3's own layout refused for its standalone MTP stage", () => {
    const read = (text: string, pp: number, layers: number, mtp = 0) => {
      const r = PipelineLayout.parse(text, pp, layers, mtp)
      return Result.isFailure(r) ? r.failure.reason : r.success
    }
    // 16 stages of pp 8: vpp 2; the first stage holds the embedding and 3 layers, the last the loss alone.
    expect(read("Et*3|(tt|)*13,t|L", 8, 30)).toEqual({ stageLayers: [3, ...Array<number>(13).fill(2), 1, 0], vpp: 2 })
    expect(read("E|(t|)*2,tL", 4, 3)).toEqual({ stageLayers: [0, 1, 1, 1], vpp: 1 })
    expect(read("Et*3|(tt|)*29,m|L", 16, 61, 1)).toBe("puts MTP layers in stage 30, before the last (31)")
    expect(read("Et*3|(tt|)*29,|mL", 16, 61, 1)).toEqual({ stageLayers: [3, ...Array<number>(29).fill(2), 0, 0], vpp: 2 })
  })

  test("what pleat cannot place is refused, naming why", () => {
    const reason = (text: string, pp: number, layers: number, mtp = 0) => {
      const r = PipelineLayout.parse(text, pp, layers, mtp)
      return Result.isFailure(r) ? `${r.failure.field}: ${r.failure.reason}` : "read"
    }
    expect(reason("Et|tX", 2, 2)).toBe('pipeline-layout: holds "X", which is no layer')
    expect(reason("Et|tL", 1, 2)).toBe("pipeline-layout: has 2 stages, where pp is 1 (virtual stages need pipeline parallelism)")
    expect(reason("Et|t|tL", 2, 3)).toBe("pipeline-layout: has 3 stages, not a multiple of pp = 2")
    expect(reason("tE|tL", 2, 2)).toBe("pipeline-layout: does not start with the embedding, once (E)")
    expect(reason("Et|LtL", 2, 2)).toBe("pipeline-layout: does not end with the loss, once (L)")
    expect(reason("Et|tL", 2, 3)).toBe("pipeline-layout: holds 2 transformer layers (t), where the model has 3")
    expect(reason("Et|tL", 2, 2, 1)).toBe("pipeline-layout: holds 0 MTP layers (m), where the model has 1 (--mtp-num-layers)")
    expect(reason("Em|ttL", 2, 2, 1)).toBe("pipeline-layout: puts a transformer layer after an MTP layer")
    expect(reason("|Ett|tL", 3, 3)).toBe("pipeline-layout: puts the embedding in stage 1, after empty stages")
    expect(reason("Ett|tL|", 3, 3)).toBe("pipeline-layout: puts the loss in stage 1 of 3")
    // Partition: the counts against the model and the stages; not with the end stages' own counts.
    const failure = (input: Partition.PartitionInput) => {
      const r = Partition.validate(input)
      return Result.isFailure(r) ? `${r.failure.field}: ${r.failure.reason}` : "valid"
    }
    expect(failure({ layers: 4, pp: 2, vpp: 1, stageLayers: [1, 2] })).toBe("pipeline-layout: holds 3 layers, where the model has 4")
    expect(failure({ layers: 4, pp: 2, vpp: 2, stageLayers: [2, 2] })).toBe("pipeline-layout: has 2 stages, where pp x vpp is 2 x 2 = 4")
    expect(failure({ layers: 4, pp: 2, vpp: 1, stageLayers: [2, 2], firstStageLayers: 2 })).toBe(
      "pipeline-layout: gives every stage its layers, and so do --first-stage-layers / --last-stage-layers",
    )
  })
})
