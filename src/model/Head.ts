/**
 * Head: the last operator of the model, hidden rows -> this rank's share of the loss.
 *
 *   final RMSNorm -> output layer, column-parallel over the vocabulary (rows gathered over tp
 *   under SP) -> vocab-parallel cross-entropy (mean over this cp rank's kept rows)
 *   -> scaled by kept / (labels * M * dp)
 *
 * where kept counts this rank's targets that are not ignored and labels the micro-batch's, on
 * every cp rank (Tokens.labels; B * S, so the factor is 1 / (cp * M * dp), unless --eod-mask-loss
 * leaves some out): the ranks' shares add up to the micro-batch's mean over its labels. With
 * --calculate-per-token-loss the factor is kept / stepLabels (Tokens.stepLabels, the whole step's
 * kept targets): the shares add up to the step's mean over its tokens.
 *
 * The output layer's weight [H, vocab/tp] is the `output` parameter with untied embeddings; tied
 * (the default), it is this rank's block of the embedding table [vocab/tp, H], which the
 * product reads transposed (no copy): the embedding's vocabulary rows split over tp are the
 * output's columns split over tp, so the logits and the cross-entropy are laid out the same
 * either way. Its gradient flows back into the embedding (on the tape at pp = 1; into the last
 * stage's copy at pp > 1, Params).
 *
 * The loss of one cp rank is its part of the mean over the micro-batch, so the shares are partial sums over
 * the axes the rows are still split over after the column-parallel product's gather (a typed
 * channel): cp. The laid cross-entropy gives that layout from the logits'; the model declares
 * `ModelLayouts.lossLayout`.
 */
import * as Effect from "effect/Effect"
import * as VocabParallel from "../attention/VocabParallel.js"
import * as Operator from "../dataflow/Operator.js"
import * as ParallelLinear from "../dataflow/ParallelLinear.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import { scale } from "../tensor/ops/Elementwise.js"
import { rmsNorm } from "../tensor/ops/Norm.js"
import * as ModelContext from "./ModelContext.js"

/** The operator's name in errors and traces. */
const name = "output + loss"

/**
 * The head of a rank for one micro-batch (its targets, and what the loss is a mean over:
 * Tokens.labels, all B*S when not given, or Tokens.stepLabels); `hidden` and `loss` are the
 * layouts the model declares for its input and output.
 * @category constructors
 */
export const make = (
  c: ModelContext.ModelContext,
  targets: Int32Array,
  layouts: { readonly hidden: TensorLayout.TensorLayout; readonly loss: TensorLayout.TensorLayout },
  normed?: TensorLayout.WithLayout,
  counts?: Pick<ModelContext.Tokens, "labels" | "stepLabels">,
) =>
  Operator.laid(name, { input: layouts.hidden, output: layouts.loss }, (x: ModelContext.Activations) =>
    Effect.gen(() => headSteps(c, targets, shareOf(c, targets, counts?.labels ?? c.microBatch * c.sizes.seq, counts?.stepLabels), x, normed)),
  )

/**
 * A rank's factor from its mean over its kept `targets` to its share of the step's loss: over the
 * micro-batch's `labels` and the step's M * dp micro-batches, or over `stepLabels`, the step's
 * kept targets, where given (--calculate-per-token-loss).
 */
const shareOf = (c: ModelContext.ModelContext, targets: Int32Array, labels: number, stepLabels: number | undefined): number =>
  stepLabels === undefined ? shareOfMean(targets, labels, c.microBatchesPerStep) : shareOfMean(targets, stepLabels)

/**
 * What turns a rank's mean over its kept `targets` into its share of the mean over the
 * micro-batch's `labels` (on every cp rank), divided by `per` more: kept / (labels * per), 0 when
 * nothing is kept.
 * @category mapping
 */
export const shareOfMean = (targets: Int32Array, labels: number, per = 1): number => {
  const kept = ModelContext.keptTargets(targets)
  return kept === 0 ? 0 : kept / (labels * per)
}

/**
 * The model's output rows through the final norm (the head's first step; `make` takes them made
 * where something else reads them too: the multi-token prediction layers).
 * @category combinators
 */
export const finalNormed = (c: ModelContext.ModelContext, x: TensorLayout.WithLayout): TensorLayout.WithLayout =>
  TensorLayout.attach(rmsNorm(x.tensor, c.param("finalNorm"), ModelContext.normEpsOf(c.sizes)), x.layout)

/**
 * The mean cross-entropy of normed rows through the output layer (the embedding read transposed
 * when tied) over the targets not `ignoreIndex`: the head's loss before its scaling, and each
 * multi-token prediction depth's.
 * @category combinators
 */
export const crossEntropyOf = (c: ModelContext.ModelContext, normed: TensorLayout.WithLayout, targets: Int32Array, ignoreIndex?: number) =>
  Effect.gen(() => crossEntropySteps(c, normed, targets, ignoreIndex))

/** crossEntropyOf's steps, defined once, not per call (as the head's). */
function* crossEntropySteps(c: ModelContext.ModelContext, normed: TensorLayout.WithLayout, targets: Int32Array, ignoreIndex: number | undefined) {
  const tp = c.groups.tp
  // Tied: the embedding block [vocab/tp, H] read transposed by the product.
  const tied = c.sizes.untieEmbeddings !== true
  const weight = tied ? c.param("embedding") : c.param("output")
  const logits = yield* ParallelLinear.columnParallelLaid(normed, weight, { tp, sequenceParallel: c.sequenceParallel }, "vocab", tied)
  return yield* VocabParallel.crossEntropyLaid(logits, targets, c.sizes.vocab, tp, ignoreIndex)
}

/** The head's steps on one input, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* headSteps(c: ModelContext.ModelContext, targets: Int32Array, share: number, x: ModelContext.Activations, normed: TensorLayout.WithLayout | undefined) {
  const ce = yield* crossEntropyOf(c, normed ?? finalNormed(c, x), targets, ModelContext.ignoredTarget)
  return TensorLayout.attach(scale(ce.tensor, share), ce.layout)
}
