// One rank's view of a model for the model-level properties: a context with float64 parameters
// from the seed, and the output rows (every layer, no head) of one sequence of ids.
import * as Effect from "effect/Effect"
import * as Group from "../../src/comm/Group.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Mixtral from "../../src/model/Mixtral.js"
import type * as ModelContext from "../../src/model/ModelContext.js"
import type * as Tensor from "../../src/tensor/Tensor.js"
import type * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"

/** The parameters of `model` on one rank (float64, seed 3), by name. */
export const paramsOf = (model: ModelConfig.ModelConfig): ((name: string) => Tensor.Tensor) => {
  const one = ParallelConfig.make({ world: 1 })
  const params = RankParams.make(Params.specs(model), () => true, Folding.place(Folding.make(one), 0), one.sizes, 3, "float64")
  return (name) => {
    const held = params.get(name)
    if (held === undefined) throw new Error(`no parameter ${name}`)
    return held.value
  }
}

/** One rank's context for `model` (its seq is the sequence length), parameters from `param`. */
export const contextOf = (
  model: ModelConfig.ModelConfig,
  param: (name: string) => Tensor.Tensor,
  documents?: ModelContext.ModelContext["documents"],
): ModelContext.ModelContext => {
  const parallel = ParallelConfig.make({ world: 1 })
  const g = (f: Parameters<typeof Group.ofFamily>[1]) => Group.ofFamily(parallel, f, 0)
  return {
    sizes: model,
    microBatch: 1,
    groups: { tp: g("tp"), cp: g("cp"), tpCp: g("tp-cp"), expert: { ep: g("ep"), etp: g("etp"), etpEp: g("etp-ep") } },
    cpRank: 0,
    sequenceParallel: false,
    microBatchesPerStep: 1,
    auxLossCoeff: 0.01,
    param,
    documents,
  }
}

/** The model's output rows (every layer, no head) of `ids` as one sequence. */
export const rowsOf = (c: ModelContext.ModelContext, ids: Int32Array) =>
  Effect.map(Mixtral.forward(c, { layers: [0, c.sizes.layers], isFirst: true, isLast: false }, undefined, { ids, targets: new Int32Array(ids.length) }), (out) =>
    Array.from((out.hidden as { tensor: Tensor.Tensor }).tensor.data),
  )

export const maxDifference = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - (b[i] as number))), 0)
