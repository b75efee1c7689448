// Random training mappings and the small model the training properties run: one definition for
// every suite that compares training runs (parallel vs one rank, backends, float32).
import fc from "fast-check"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"

/** A training mapping as plain data (validate it with ParallelConfig.validate). */
export interface TrainingMapping {
  readonly world: number
  readonly tp: number
  readonly cp: number
  readonly pp: number
  readonly dp: number
  readonly ep: number
  readonly etp: number
  readonly vpp: number | undefined
  readonly order: string
}

/**
 * Mappings over all five dims (vpp too) with world in [minWorld, maxWorld]; `folded` keeps only
 * those whose MoE groups (ep x etp > 1) cut across the attention grid.
 */
export const mappings = (options: { readonly minWorld: number; readonly maxWorld: number; readonly folded?: boolean }): fc.Arbitrary<TrainingMapping> =>
  fc
    .record({
      tp: fc.constantFrom(1, 2),
      cp: fc.constantFrom(1, 2),
      pp: fc.constantFrom(1, 2),
      dp: fc.constantFrom(1, 2),
      vpp: fc.constantFrom(undefined, 2),
      order: fc.constantFrom("tp-cp-ep-dp-pp", "tp-ep-cp-dp-pp", "tp-cp-dp-ep-pp"),
    })
    .filter((m) => m.tp * m.cp * m.pp * m.dp >= options.minWorld && m.tp * m.cp * m.pp * m.dp <= options.maxWorld)
    .chain((m) => {
      const world = m.tp * m.cp * m.pp * m.dp
      const perStage = world / m.pp
      const shapes = [1, 2, 4, 8]
        .flatMap((ep) => [1, 2].map((etp) => ({ ep, etp })))
        .filter(({ ep, etp }) => perStage % (ep * etp) === 0 && (options.folded !== true || ep * etp > 1))
      return fc.constantFrom(...(shapes.length > 0 ? shapes : [{ ep: 1, etp: 1 }])).map((e) => ({ ...m, world, ...e, vpp: m.pp > 1 ? m.vpp : undefined }))
    })

/** The small model of the training properties: 4 layers, MoE every other layer, 8 experts. */
export const model: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 4, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, experts: 8, seq: 8, vocab: 16, moeEvery: 2 }

/** A small float64 job on 4 ranks (tp 2 x pp 2, ep 2): the interruption and fault suites run it. */
export const smallJob = (steps: number): RankTrainer.TrainSetup => ({
  parallel: ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 }),
  model: { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16 },
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 11,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
})
