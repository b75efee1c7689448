// Model definitions of the ModelDefinition properties, loaded by reference on every backend: the
// built-in model rebuilt from the public pieces, and a dense-MoE hybrid with parameters of its own.
import * as Effect from "effect/Effect"
import * as DenseMlp from "../../src/dataflow/DenseMlp.js"
import * as Operator from "../../src/dataflow/Operator.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Mixtral from "../../src/model/Mixtral.js"
import type * as ModelContext from "../../src/model/ModelContext.js"
import { swiglu } from "../../src/tensor/ops/Activation.js"
import { add } from "../../src/tensor/ops/Elementwise.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { rmsNorm } from "../../src/tensor/ops/Norm.js"
import type * as ModelConfig from "../../src/train/ModelConfig.js"
import type * as ModelDefinition from "../../src/train/ModelDefinition.js"
import * as Params from "../../src/train/Params.js"

/** The built-in model, assembled from the public parts as a user would. */
export const rebuilt: ModelDefinition.ModelDefinition = { name: "rebuilt", params: Params.specs, forward: Mixtral.forwardWith(Mixtral.standardLayer) }

const width = 16

const hybridParams = (m: ModelConfig.ModelConfig): ReadonlyArray<Params.ParamSpec> => [
  ...Params.specs(m),
  ...Array.from(
    { length: m.layers },
    (_, l): Array<Params.ParamSpec> => [
      { name: `layers.${l}.dense.norm`, shape: [m.hidden], sharding: "replicated", std: 0, layer: l },
      { name: `layers.${l}.dense.wGate`, shape: [m.hidden, width], sharding: "cols/tp", std: 0.1, layer: l },
      { name: `layers.${l}.dense.wUp`, shape: [m.hidden, width], sharding: "cols/tp", std: 0.1, layer: l },
      { name: `layers.${l}.dense.wDown`, shape: [width, m.hidden], sharding: "rows/tp", std: 0.05, layer: l },
    ],
  ).flat(),
]

const dense = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout): Mixtral.LayerOperator =>
  Operator.laid(`dense (layer ${layer})`, { input: hidden, output: hidden }, (h: ModelContext.Activations) => {
    const p = (n: string) => c.param(`layers.${layer}.dense.${n}`)
    return Effect.map(
      DenseMlp.forwardLaid(
        TensorLayout.attach(rmsNorm(h.tensor, p("norm")), h.layout),
        { wGate: p("wGate"), wUp: p("wUp"), wDown: p("wDown") },
        { tp: c.groups.tp, sequenceParallel: c.sequenceParallel },
      ),
      (out) => ({ ...h, tensor: add(h.tensor, out.tensor), layout: out.layout }),
    )
  })

/** Every layer: attention, MoE, then a dense residual MLP with its own parameters. */
export const hybrid: ModelDefinition.ModelDefinition = {
  name: "hybrid",
  params: hybridParams,
  forward: Mixtral.forwardWith((c, layer, hidden) => [...Mixtral.standardLayer(c, layer, hidden), dense(c, layer, hidden)]),
}

/** The hybrid's dense branch on this rank's shards with no collective at all: right on one rank,
 * wrong wherever tp > 1 (its rows see only their own tp shard of the MLP). */
const unreducedDense = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout): Mixtral.LayerOperator =>
  Operator.laid(`unreduced dense (layer ${layer})`, { input: hidden, output: hidden }, (h: ModelContext.Activations) => {
    const p = (n: string) => c.param(`layers.${layer}.dense.${n}`)
    const x = rmsNorm(h.tensor, p("norm"))
    const y = matmul(swiglu(matmul(x, p("wGate")), matmul(x, p("wUp"))), p("wDown"))
    return Effect.succeed({ ...h, tensor: add(h.tensor, y) })
  })

/** The hybrid with the broken branch (for the kit's property that must catch it). */
export const unreduced: ModelDefinition.ModelDefinition = {
  name: "unreduced",
  params: hybridParams,
  forward: Mixtral.forwardWith((c, layer, hidden) => [...Mixtral.standardLayer(c, layer, hidden), unreducedDense(c, layer, hidden)]),
}

/** Not a definition (for the error). */
export const notAModel = { name: "nothing" }
