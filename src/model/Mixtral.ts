/**
 * Mixtral: the Mixtral-like model as a composition of dataflow operators, and the forward of
 * one model chunk (a run of layers) on one rank for one micro-batch.
 *
 *   embedding (first chunk) -> [attention (l) -> moe|mlp (l)] for l in the chunk
 *     -> output + loss (last chunk)
 *
 * Every edge carries the hidden rows in the layout of `ModelLayouts.hiddenLayout` (the chunk's
 * input and output on the pipeline links too); each operator checks its input and output and
 * chaining checks that neighbours agree. Loss scaling: the step loss is the mean over the
 * global batch's micro-batches of (token-mean cross-entropy + aux losses). A cp rank sees 1/cp
 * of a micro-batch's tokens, so its share of the cross-entropy is (local mean) / (cp * M * dp)
 * (with targets left out, its kept rows' sum over the micro-batch's kept labels: Head);
 * each rank's aux terms (already split so that they add up over tp-cp) are divided by M * dp.
 */
import * as Effect from "effect/Effect"
import type { Communicator } from "../comm/Communicator.js"
import * as Operator from "../dataflow/Operator.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import { scale } from "../tensor/ops/Elementwise.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Block from "./Block.js"
import * as Embedding from "./Embedding.js"
import * as Head from "./Head.js"
import * as ModelContext from "./ModelContext.js"
import * as ModelLayouts from "./ModelLayouts.js"
import type * as MoeStats from "./MoeStats.js"
import * as MultiTokenPrediction from "./MultiTokenPrediction.js"

/**
 * Which part of the model a chunk is: layers [first, last) and whether it embeds or ends.
 * @category models
 */
export interface Chunk {
  readonly layers: readonly [number, number]
  readonly isFirst: boolean
  readonly isLast: boolean
}

/**
 * What a chunk's forward gives: the hidden rows it passes on (or the loss, on the last chunk)
 * and the aux-loss terms of its MoE layers, both already scaled into the step loss.
 * @category models
 */
export interface ChunkOutput {
  readonly hidden: TensorLayout.WithLayout | undefined
  readonly loss: Tensor.Tensor | undefined
  /**
   * The multi-token prediction layers' share of the objective (MultiTokenPrediction), scaled as
   * `loss`, on the last chunk of a model with them: part of what the step trains and reports,
   * not of the language-model loss an evaluation reports.
   */
  readonly mtp?: Tensor.Tensor | undefined
  readonly aux: Tensor.Tensor
  /** Rows each local expert processed, per MoE layer of the chunk (for load imbalance). */
  readonly expertRows: ReadonlyArray<ReadonlyArray<number>>
  /** What each MoE layer of the chunk measured (aux and z losses, dropped pairs). */
  readonly moeStats: ReadonlyArray<MoeStats.MoeStats>
}

/**
 * The layouts of the model's edges on this rank.
 * @category mapping
 */
export const layouts = (c: ModelContext.ModelContext) => ({
  tokens: ModelLayouts.tokensLayout(c),
  hidden: ModelLayouts.hiddenLayout(c),
  loss: ModelLayouts.lossLayout(c),
})

/**
 * An operator on the hidden rows, as one layer of a model is made of.
 * @category models
 */
export type LayerOperator = Operator.Operator<ModelContext.Activations, ModelContext.Activations, unknown, Communicator>

/**
 * The operators of layer `layer`, in order, each keeping the hidden rows in `hidden`'s layout.
 * @category models
 */
export type LayerOperators = (c: ModelContext.ModelContext, layer: number, hidden: TensorLayout.TensorLayout) => ReadonlyArray<LayerOperator>

/**
 * The Mixtral-like layer: attention, then the FFN (MoE or dense by the layer's frequency).
 * @category constructors
 */
export const standardLayer: LayerOperators = (c, layer, hidden) => [Block.attention(c, layer, hidden), Block.ffn(c, layer, hidden)]

/**
 * The forward of a chunk of a model whose layers are `layerOperators` (embedding on the first
 * chunk, output and loss on the last): from the micro-batch's tokens (first chunk) or the
 * hidden rows received from the previous stage. A user's model with its own blocks is
 * `forwardWith(itsLayer)`; the built-in one is `forward`.
 * @category combinators
 */
export const forwardWith = (layerOperators: LayerOperators) => (c: ModelContext.ModelContext, chunk: Chunk, input: Tensor.Tensor | undefined, tokens: ModelContext.Tokens) =>
  Effect.gen(() => forwardSteps(layerOperators, c, chunk, input, tokens))

/** forwardWith's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* forwardSteps(layerOperators: LayerOperators, c: ModelContext.ModelContext, chunk: Chunk, input: Tensor.Tensor | undefined, tokens: ModelContext.Tokens) {
  const l = layouts(c)
  const ops: Array<LayerOperator> = []
  for (let layer = chunk.layers[0]; layer < chunk.layers[1]; layer++) ops.push(...layerOperators(c, layer, l.hidden))
  const body = Operator.chain(`layers [${chunk.layers[0]}, ${chunk.layers[1]})`, ops)
  let x: ModelContext.Activations
  if (chunk.isFirst) {
    x = yield* Operator.andThen(Embedding.make(c, l.hidden), body).run(tokens)
  } else if (input !== undefined) {
    x = yield* body.run({ tensor: input, layout: l.hidden, aux: Tensor.zeros([], { dtype: input.dtype, device: input.device }), expertRows: [] })
  } else {
    return yield* Effect.die(new Error(`chunk of layers [${chunk.layers[0]}, ${chunk.layers[1]}) is not the first but was given no input`))
  }
  if (!chunk.isLast) {
    const aux = scale(x.aux, 1 / c.microBatchesPerStep)
    return { hidden: TensorLayout.attach(x.tensor, x.layout), loss: undefined, aux, expertRows: x.expertRows, moeStats: x.moeStats ?? [] } satisfies ChunkOutput
  }
  // The multi-token prediction layers run on the model's output before the head (their MoE
  // layers' terms and their losses join the chunk's).
  // Both read the model's output through the final norm: made once.
  const normed = ModelContext.mtpLayersOf(c.sizes) > 0 ? Head.finalNormed(c, x) : undefined
  const added = normed === undefined ? undefined : yield* MultiTokenPrediction.run(c, tokens, x, normed, l.hidden)
  const after = added?.after ?? x
  const loss = (yield* Head.make(c, tokens.targets, l, normed, tokens).run(x)).tensor
  const aux = scale(after.aux, 1 / c.microBatchesPerStep)
  if (added === undefined) return { hidden: undefined, loss, aux, expertRows: after.expertRows, moeStats: after.moeStats ?? [] } satisfies ChunkOutput
  return { hidden: undefined, loss, mtp: added.loss, aux, expertRows: after.expertRows, moeStats: after.moeStats ?? [] } satisfies ChunkOutput
}

/**
 * The forward of a chunk of the Mixtral-like model.
 * @category combinators
 */
export const forward = forwardWith(standardLayer)
