// The planner's parameter count of a pipeline rank equals what training allocates on that rank
// (RankTrainer's shards, counted element by element), for uneven splits, interleaving, leading
// dense layers and dense layers between MoE ones: the planner's memory sees dense layers where
// training puts them.
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import type { Mapping } from "../../src/plan/Job.js"
import * as RankParameters from "../../src/plan/RankParameters.js"
import * as BuiltinModels from "../../src/train/BuiltinModels.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelDefinition from "../../src/train/ModelDefinition.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Params from "../../src/train/Params.js"
import * as RankTrainer from "../../src/train/RankTrainer.js"

describe("RankParameters", () => {
  test("a pp rank's dense and expert parameters are the trainer's shards of its layers", async () => {
    const definition = await ModelDefinition.load(BuiltinModels.defaultRef)
    const cases = [
      { layers: 6, denseFirst: 2, moeEvery: 1, pp: 2, vpp: undefined, first: 1, last: undefined },
      { layers: 8, denseFirst: 0, moeEvery: 2, pp: 2, vpp: 2, first: undefined, last: undefined },
      { layers: 7, denseFirst: 1, moeEvery: 2, pp: 4, vpp: undefined, first: 1, last: 0 },
      { layers: 4, denseFirst: 3, moeEvery: 1, pp: 4, vpp: undefined, first: undefined, last: undefined },
    ]
    for (const c of cases) {
      const [tp, ep] = [2, 2]
      const world = tp * c.pp
      const parallel = ParallelConfig.make({ world, tp, pp: c.pp, ep, etp: 1, vpp: c.vpp, firstStageLayers: c.first, lastStageLayers: c.last })
      const model: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: c.layers, denseFirst: c.denseFirst, moeEvery: c.moeEvery }
      const setup: RankTrainer.TrainSetup = {
        parallel,
        model,
        batch: { microBatch: 1, globalBatch: 2 * c.pp },
        seed: 1,
        dtype: "float32",
        optimizer: Optimizer.defaults(1),
        auxLossCoeff: 0,
      }
      ModelConfig.check(model, setup.batch, parallel)
      const map: Mapping = {
        ...{ tp, cp: 1, pp: c.pp, vpp: c.vpp ?? 1, ep, etp: 1, dp: 1, edp: 1, order: "tp-cp-ep-dp-pp", microBatch: 1, recompute: "none" },
        ...{ firstStageLayers: c.first, lastStageLayers: c.last },
      }
      // Rank r of the default order is pp rank floor(r / tp): rank 0 the first stage, the last rank the last, rank tp the second.
      for (const [edge, rank] of [
        ["first", 0],
        ["last", world - 1],
        ["middle", c.pp > 2 ? tp : 0],
      ] as const) {
        if (edge === "middle" && c.pp <= 2) continue
        const held = [...RankTrainer.make(setup, rank, [], definition).params.values()]
        const count = (expert: boolean) => held.filter((h) => Params.isExpert(h.spec) === expert).reduce((n, h) => n + h.value.size, 0)
        const planned = RankParameters.ofRank(model, map, edge)
        expect([planned.dense, planned.expert], `${JSON.stringify(c)} ${edge}`).toEqual([count(false), count(true)])
      }
    }
  })
})
