// Uneven pipeline stages (--first-stage-layers, --last-stage-layers; Megatron-Core's
// num_layers_in_first/last_pipeline_stage): the layer counts as stated (rank 0's chunks
// first/vpp each, rank pp-1's last/vpp, every other chunk the equal rest), every layer on exactly
// one stage in stage order, what cannot be split refused naming the flag; and training on such a
// split equals one rank (pleat's Lockstep, float64), empty end stages included.
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Partition from "../../src/pipeline/Partition.js"
import * as Lockstep from "../../src/train/Lockstep.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as BuiltinModels from "../../src/train/BuiltinModels.js"
import * as ModelDefinition from "../../src/train/ModelDefinition.js"
import * as RankTrainer from "../../src/train/RankTrainer.js"

/** A split as a user would choose it: per-chunk counts, multiplied out. */
const splits = fc
  .record({
    pp: fc.integer({ min: 2, max: 6 }),
    vpp: fc.integer({ min: 1, max: 3 }),
    firstPerChunk: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
    lastPerChunk: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
    middlePerChunk: fc.integer({ min: 1, max: 4 }),
  })
  .filter((s) => s.firstPerChunk !== undefined || s.lastPerChunk !== undefined)
  .map((s) => {
    const middleRanks = s.pp - (s.firstPerChunk === undefined ? 0 : 1) - (s.lastPerChunk === undefined ? 0 : 1)
    const first = s.firstPerChunk === undefined ? undefined : s.firstPerChunk * s.vpp
    const last = s.lastPerChunk === undefined ? undefined : s.lastPerChunk * s.vpp
    const layers = (first ?? 0) + (last ?? 0) + middleRanks * s.vpp * s.middlePerChunk
    return { ...s, first, last, layers }
  })
  .filter((s) => s.layers > 0)

describe("uneven pipeline stages", () => {
  test("each chunk holds its stated count, the stages cover the layers once and in order, stageOf finds a layer's stage", () => {
    fc.assert(
      fc.property(splits, (s) => {
        const part = Partition.make({ layers: s.layers, pp: s.pp, vpp: s.vpp, firstStageLayers: s.first, lastStageLayers: s.last })
        let next = 0
        for (let stage = 0; stage < s.pp * s.vpp; stage++) {
          const { pp, chunk } = Partition.holder(part, stage)
          const { start, end } = Partition.layersOf(part, pp, chunk)
          const expected = pp === 0 && s.firstPerChunk !== undefined ? s.firstPerChunk : pp === s.pp - 1 && s.lastPerChunk !== undefined ? s.lastPerChunk : s.middlePerChunk
          expect(end - start, `stage ${stage}`).toBe(expected)
          expect(start).toBe(next)
          for (let l = start; l < end; l++) expect(Partition.stageOf(part, l)).toBe(stage)
          next = end
        }
        expect(next).toBe(s.layers)
        // Whole ranks: the first and last hold the counts given.
        const onRank = (p: number) => Array.from({ length: s.vpp }, (_, v) => Partition.layersOf(part, p, v)).reduce((n, r) => n + r.end - r.start, 0)
        if (s.first !== undefined) expect(onRank(0)).toBe(s.first)
        if (s.last !== undefined) expect(onRank(s.pp - 1)).toBe(s.last)
      }),
      { numRuns: 300 },
    )
  })

  test("what cannot be split is refused naming the flag", () => {
    const failure = (input: Partition.PartitionInput) => {
      const r = Partition.validate(input)
      if (Result.isSuccess(r)) throw new Error(`${JSON.stringify(input)} was accepted`)
      return `${r.failure.field}: ${r.failure.reason}`
    }
    expect(failure({ layers: 5, pp: 1, firstStageLayers: 1 })).toBe("first-stage-layers: needs pipeline parallelism but pp is 1")
    expect(failure({ layers: 6, pp: 2, vpp: 2, firstStageLayers: 1 })).toBe(
      "first-stage-layers: is not divisible by vpp = 2, so rank 0's 2 chunks cannot hold equal numbers of layers",
    )
    expect(failure({ layers: 6, pp: 2, vpp: 2, firstStageLayers: 2, lastStageLayers: 3 })).toMatch(/^last-stage-layers: is not divisible by vpp = 2, so rank 1's/)
    expect(failure({ layers: 5, pp: 2, firstStageLayers: 2, lastStageLayers: 2 })).toBe("first-stage-layers: with pp 2 leaves 1 of the 5 layers to no stage (first 2 + last 2)")
    expect(failure({ layers: 5, pp: 3, firstStageLayers: 6 })).toBe("first-stage-layers: gives the end stages more than the model's 5 layers (first 6)")
    expect(failure({ layers: 8, pp: 4, lastStageLayers: 1 })).toBe(
      "last-stage-layers: leaves 7 of the 8 layers (8 - 1) to 3 middle ranks of 1 chunk, not a multiple of 3 (one or more layers a chunk, equal)",
    )
    expect(failure({ layers: 4, pp: 4, firstStageLayers: 2, lastStageLayers: 2 })).toMatch(/leaves 0 of the 4 layers \(4 - 2 - 2\) to 2 middle ranks of 1 chunk, not at least 2/)
    expect(failure({ layers: 4, pp: 2, firstStageLayers: -1 })).toBe("first-stage-layers: is not a non-negative integer")
    // Without counts, layers pp*vpp does not divide point at them.
    const r = Partition.validate({ layers: 61, pp: 4 })
    expect(Result.isFailure(r) && r.failure.fix).toContain("--first-stage-layers, --last-stage-layers")
    // DeepSeek-V3's 61 layers on pp 16, 1 + 14 x 4 + 4.
    const deepseek = Partition.make({ layers: 61, pp: 16, firstStageLayers: 1, lastStageLayers: 4 })
    expect([0, 1, 14, 15].map((p) => Partition.layersOf(deepseek, p, 0))).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 5 },
      { start: 53, end: 57 },
      { start: 57, end: 61 },
    ])
  })

  test("each rank's trainer holds the parameters of its layers: rank 0 one layer and the embedding, the last rank the output alone", async () => {
    const layers = 7
    const parallel = ParallelConfig.make({ world: 4, pp: 4, ep: 1, etp: 1, firstStageLayers: 1, lastStageLayers: 0 })
    const setup: RankTrainer.TrainSetup = {
      parallel,
      model: { ...ModelConfig.small, layers, untieEmbeddings: true },
      batch: { microBatch: 1, globalBatch: 4 },
      seed: 1,
      dtype: "float64",
      optimizer: Optimizer.defaults(1),
      auxLossCoeff: 0.01,
    }
    const definition = await ModelDefinition.load(BuiltinModels.defaultRef)
    const layersHeld = (rank: number) => [...new Set([...RankTrainer.make(setup, rank, [], definition).params.keys()].map((n) => n.split(".").slice(0, 2).join(".")))].sort()
    expect(layersHeld(0)).toEqual(["embedding", "layers.0"])
    expect(layersHeld(1)).toEqual(["layers.1", "layers.2", "layers.3"])
    expect(layersHeld(2)).toEqual(["layers.4", "layers.5", "layers.6"])
    expect(layersHeld(3)).toEqual(["finalNorm", "output"])
  })

  test("training on an uneven split equals one rank (float64, Lockstep), empty end stages included", async () => {
    const cases = fc.record({
      pp: fc.constantFrom(2, 4),
      dp: fc.constantFrom(1, 2),
      vpp: fc.constantFrom(1, 2),
      first: fc.constantFrom(undefined, 0, 1, 2),
      last: fc.constantFrom(undefined, 0, 1, 2),
      middle: fc.constantFrom(1, 2),
      seed: fc.integer({ min: 1, max: 1000 }),
    })
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        fc.pre(c.first !== undefined || c.last !== undefined)
        const first = c.first === undefined ? undefined : c.first * c.vpp
        const last = c.last === undefined ? undefined : c.last * c.vpp
        const middleRanks = c.pp - (first === undefined ? 0 : 1) - (last === undefined ? 0 : 1)
        const layers = (first ?? 0) + (last ?? 0) + middleRanks * c.vpp * c.middle
        fc.pre(layers > 0)
        const parallel = ParallelConfig.make({
          world: c.pp * c.dp,
          pp: c.pp,
          ep: c.dp,
          etp: 1,
          vpp: c.vpp > 1 ? c.vpp : undefined,
          firstStageLayers: first,
          lastStageLayers: last,
        })
        const setup: RankTrainer.TrainSetup = {
          parallel,
          model: { ...ModelConfig.small, layers, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, experts: 4, seq: 8, vocab: 16, moeEvery: 2 },
          batch: { microBatch: 1, globalBatch: c.dp * 2 * c.pp },
          seed: c.seed,
          dtype: "float64",
          optimizer: Optimizer.defaults(2),
          auxLossCoeff: 0.01,
        }
        ModelConfig.check(setup.model, setup.batch, setup.parallel)
        const v = Lockstep.verdict(await Effect.runPromise(Lockstep.run(setup, { steps: 2, timeoutMs: 20_000 })), "float64")
        expect(v.failed, `${JSON.stringify(c)}: ${JSON.stringify(v)}`).toEqual([])
      }),
      { numRuns: 10 },
    )
  }, 300_000)
})
