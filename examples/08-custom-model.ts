// Example 08: a model of your own, trained by pleat's trainer like the built-in one. The model is
// a dense-MoE hybrid (as in Snowflake Arctic): every layer is attention, then the MoE layer, then
// a dense SwiGLU MLP residual of its own, with its own parameters. It is written against the
// public API (`pleat`): its parameters (ModelDefinition.params: the built-in ones plus four per
// layer) and its chunk forward (Mixtral.forwardWith over its layer's operators). The trainer
// loads it by reference, as it loads the built-in model, so pipeline schedules, the distributed
// optimizer, checkpoints and every backend work unchanged. It is trained on 8 ranks with
// folding, then trained under the same mapping and on one rank in lockstep (what `pleat
// verify` does for the built-in model), and property-tested over random mappings with
// `pleat/testing`: both must agree with one rank.
//
//   npx tsx examples/08-custom-model.ts
//
// Expected output (abridged):
//   hybrid model: 4 layers, each attention + MoE (8 experts, top-2) + a dense MLP of width 48
//   8 ranks: attention tp 2 x cp 1 x dp 2 x pp 2, moe etp 1 x ep 4 x edp 1
//   step 1 loss 3.6369
//   the loss fell: true
//   its own layers count: step 1 loss 3.6369 against 3.6229 for the built-in model
//   lockstep against one rank, 2 steps: loss, gradients and parameters agree: true
//   property: the hybrid equals one rank under 3 random mappings (pleat/testing)
import * as Effect from "effect/Effect"
import { dataflow, mapping, model, tensor, train } from "pleat"
import { ModelEqualsOneRank } from "pleat/testing"

const denseWidth = 48
const eps = 1e-6

/** The built-in parameters, and per layer a norm and a tensor-parallel SwiGLU MLP of our own. */
const params = (m: train.ModelConfig.ModelConfig): ReadonlyArray<train.Params.ParamSpec> => {
  const std = 0.5 / Math.sqrt(m.hidden)
  const extra = Array.from(
    { length: m.layers },
    (_, l): Array<train.Params.ParamSpec> => [
      { name: `layers.${l}.dense.norm`, shape: [m.hidden], sharding: "replicated", std: 0, layer: l },
      { name: `layers.${l}.dense.wGate`, shape: [m.hidden, denseWidth], sharding: "cols/tp", std, layer: l },
      { name: `layers.${l}.dense.wUp`, shape: [m.hidden, denseWidth], sharding: "cols/tp", std, layer: l },
      { name: `layers.${l}.dense.wDown`, shape: [denseWidth, m.hidden], sharding: "rows/tp", std: std / 2, layer: l },
    ],
  )
  return [...train.Params.specs(m), ...extra.flat()]
}

/** h + MLP(RMSNorm(h)): a residual operator on the hidden rows, through the typed collectives. */
const denseResidual = (c: model.ModelContext.ModelContext, layer: number, hidden: dataflow.TensorLayout.TensorLayout): model.Mixtral.LayerOperator =>
  dataflow.Operator.laid(`dense residual (layer ${layer})`, { input: hidden, output: hidden }, (h: model.ModelContext.Activations) => {
    const p = (name: string) => c.param(`layers.${layer}.dense.${name}`)
    const normed = dataflow.TensorLayout.attach(tensor.Norm.rmsNorm(h.tensor, p("norm"), eps), h.layout)
    const weights = { wGate: p("wGate"), wUp: p("wUp"), wDown: p("wDown") }
    return Effect.map(dataflow.DenseMlp.forwardLaid(normed, weights, { tp: c.groups.tp, sequenceParallel: c.sequenceParallel }), (out) => ({
      ...h,
      tensor: tensor.Elementwise.add(h.tensor, out.tensor),
      layout: out.layout,
    }))
  })

/** The hybrid model: the standard layer's operators, then ours. */
export const hybrid: train.ModelDefinition.ModelDefinition = {
  name: "dense-moe-hybrid",
  params,
  forward: model.Mixtral.forwardWith((c, layer, hidden) => [...model.Mixtral.standardLayer(c, layer, hidden), denseResidual(c, layer, hidden)]),
}

const main = async () => {
  const steps = 6
  const parallel = mapping.ParallelConfig.make({ world: 8, tp: 2, pp: 2, ep: 4, etp: 1 })
  const s = parallel.sizes
  const sizes = train.ModelConfig.small
  console.log(`hybrid model: ${sizes.layers} layers, each attention + MoE (${sizes.experts} experts, top-${sizes.topk}) + a dense MLP of width ${denseWidth}`)
  console.log(`8 ranks: attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x pp ${s.pp}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp}`)
  const setup: train.RankTrainer.TrainSetup = {
    parallel,
    model: sizes,
    batch: { microBatch: 1, globalBatch: 8 },
    seed: 1,
    dtype: "float64",
    optimizer: train.Optimizer.defaults(steps),
    auxLossCoeff: 0.01,
    definition: train.ModelDefinition.ref(import.meta.url, "hybrid"),
  }
  const run = await Effect.runPromise(train.Train.run(setup, { steps, onStep: (x) => console.log(`step ${x.step + 1} loss ${x.loss.toFixed(4)}`) }))
  console.log(`the loss fell: ${(run.at(-1)?.loss ?? 0) < (run[0]?.loss ?? 0) - 0.2}`)
  const { definition: _, ...builtin } = setup
  const plain = await Effect.runPromise(train.Train.run(builtin, { steps: 1 }))
  console.log(`its own layers count: step 1 loss ${run[0]?.loss.toFixed(4)} against ${plain[0]?.loss.toFixed(4)} for the built-in model`)
  const compared = await Effect.runPromise(train.Lockstep.run(setup, { steps: 2 }))
  const worst = Math.max(...compared.flatMap((k) => [k.loss.error, k.gradNorm.error, k.gradient.error, k.parameter.error]))
  console.log(`lockstep against one rank, 2 steps: loss, gradients and parameters agree: ${worst < 1e-9}`)
  await ModelEqualsOneRank.check({ definition: setup.definition, model: sizes, batch: setup.batch, numRuns: 3 })
  console.log("property: the hybrid equals one rank under 3 random mappings (pleat/testing)")
}

// Run only as a script, and without a top-level await: the ranks import this module for `hybrid`.
if (import.meta.url === `file://${process.argv[1]}`)
  main().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
