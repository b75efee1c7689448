/**
 * MultiTokenPrediction: DeepSeek-V3's multi-token prediction (MTP) as Megatron-Core trains it,
 * on the last stage after the last layer. Depth k = 1..D (layer L + k - 1) predicts the token
 * k + 1 places ahead from the previous depth's rows h_{k-1} (h_0: the model's output, after the
 * final norm) and the embedding of the tokens k places ahead:
 *
 *   ids_k[i]    = ids[i + k]      (0 where i + k >= S: Megatron rolls the ids left, zero-filled)
 *   labels_k[i] = targets[i + k]  (ignored where i + k >= S)
 *   x_k = [RMSNorm_e(Emb(ids_k)), RMSNorm_h(h_{k-1})] WehProj          [2H] -> H
 *   h_k = RMSNorm_final(Block_k(x_k))                                   attention, then MoE or MLP
 *   loss_k = cross-entropy(h_k Wout, labels_k), the mean over the micro-batch's labels not ignored
 *
 * with the model's embedding and output layer (shared; the last stage holds its copy of the
 * embedding, Params). The objective adds (scale / D) * sum_k loss_k to the language model's
 * (scale: --mtp-loss-scaling-factor, 0.1 by default), so a rank's loss share carries it as the
 * head's does; each depth's loss is reported among the layer statistics as `mtp_loss`.
 *
 * Decisions: Megatron's order of the joined halves (embedding first, as its layer concatenates
 * them); WehProj is held whole and replicated over tp (Megatron splits it by columns and gathers
 * its output): it runs on each rank's sequence-parallel rows, its gradient summed over tp as
 * every replicated parameter's. The block of an MTP layer is MoE when the model's last layer
 * is (ModelContext.isMoe). Under cp the shifted tokens come from the whole sequences
 * (Tokens.shifted: the ranks hold them all), and each rank's loss is its share of the depth's mean
 * over the micro-batch's B (S - k) labels, so the shares add up over cp exactly.
 */
import * as Effect from "effect/Effect"
import * as VocabParallel from "../attention/VocabParallel.js"
import * as Operator from "../dataflow/Operator.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import { add, scale } from "../tensor/ops/Elementwise.js"
import { matmul } from "../tensor/ops/Matmul.js"
import { rmsNorm } from "../tensor/ops/Norm.js"
import { concat } from "../tensor/ops/Shape.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Block from "./Block.js"
import * as Head from "./Head.js"
import * as ModelContext from "./ModelContext.js"
import * as ModelLayouts from "./ModelLayouts.js"
import type * as MoeStats from "./MoeStats.js"

/** The label of a position with nothing to predict (the cross-entropy's ignore index). */
const ignored = ModelContext.ignoredTarget

/**
 * The ids and labels of depth k: each sequence's ids and targets shifted left by k, the ids
 * zero-filled and the labels ignored past the sequence's end (a target already ignored, after
 * an end-of-document token under --eod-mask-loss, moves with it: Megatron rolls the loss mask
 * too); `labels` counts those kept.
 * @category mapping
 */
export const shifted = (tokens: ModelContext.Tokens, seq: number, k: number): ModelContext.Tokens => {
  const ids = new Int32Array(tokens.ids.length)
  const targets = new Int32Array(tokens.targets.length).fill(ignored)
  let labels = 0
  for (let start = 0; start < ids.length; start += seq)
    for (let i = 0; i + k < seq; i++) {
      ids[start + i] = tokens.ids[start + i + k] as number
      const target = tokens.targets[start + i + k] as number
      targets[start + i] = target
      if (target !== ignored) labels++
    }
  return { ids, targets, labels }
}

/**
 * Runs the MTP layers on the model's output rows `main` of the micro-batch `tokens`, `normed`
 * their final norm (Head.finalNormed, which the head reads too); `hidden` is the model's layout. Gives `after`, the activations after them
 * (their MoE layers' aux terms, loads and statistics added, the depths' `mtp_loss` statistics
 * last), and `loss`, their share of the objective, scaled as the head's loss.
 * @category combinators
 */
export const run = (
  c: ModelContext.ModelContext,
  tokens: ModelContext.Tokens,
  main: ModelContext.Activations,
  normed: TensorLayout.WithLayout,
  hidden: TensorLayout.TensorLayout,
) => Effect.gen(() => runSteps(c, tokens, main, normed, hidden))

function* runSteps(c: ModelContext.ModelContext, tokens: ModelContext.Tokens, main: ModelContext.Activations, normed: TensorLayout.WithLayout, hidden: TensorLayout.TensorLayout) {
  const s = c.sizes
  const depths = ModelContext.mtpLayersOf(s)
  const eps = ModelContext.normEpsOf(s)
  const tp = c.groups.tp
  let x = main
  let rows = normed.tensor
  let sum: Tensor.Tensor | undefined
  const stats: Array<MoeStats.MoeStats> = []
  for (let k = 1; k <= depths; k++) {
    const layer = s.layers + k - 1
    const p = (name: string) => c.param(`layers.${layer}.${name}`)
    const depth = tokens.shifted?.(k) ?? shifted(tokens, s.seq, k)
    const embedded = yield* VocabParallel.embeddingLaid(c.param("embedding"), depth.ids, ModelLayouts.tokensLayout(c), s.vocab, tp, c.sequenceParallel)
    const joined = concat([rmsNorm(embedded.tensor, p("enorm"), eps), rmsNorm(rows, p("hnorm"), eps)], 1)
    const input = ModelContext.withRows(x, matmul(joined, p("ehProj")), x.layout)
    const ops = [Block.attention(c, layer, hidden), Block.ffn(c, layer, hidden)]
    x = yield* Operator.chain(`multi-token prediction (layer ${layer})`, ops).run(input)
    rows = rmsNorm(x.tensor, p("finalNorm"), eps)
    // This rank's share of the depth's mean over the micro-batch's labels (B (S - k) unless some
    // are left out): its rows' mean times their count over all (the cp ranks' shares add up); or
    // of the step's mean over the step's labels (--calculate-per-token-loss).
    const labels = depth.labels ?? c.microBatch * (s.seq - k)
    const perStep = depth.stepLabels
    const share = scale((yield* Head.crossEntropyOf(c, TensorLayout.attach(rows, x.layout), depth.targets, ignored)).tensor, Head.shareOfMean(depth.targets, perStep ?? labels))
    sum = sum === undefined ? share : add(sum, share)
    // Each tp member computes the whole share: its statistic is a 1/tp part, as the ranks' add up;
    // the statistics are means over the step's micro-batches, so a share of the step's mean counts M * dp times.
    const statistic = ((Tensor.item(share) as number) * (perStep === undefined ? 1 : c.microBatchesPerStep)) / tp.ranks.length
    stats.push({ terms: [{ name: "mtp_loss", value: statistic }], dropped: 0 })
  }
  const weight = (s.mtpLossScale ?? ModelContext.defaultMtpLossScale) / depths
  const after: ModelContext.Activations = { tensor: x.tensor, layout: x.layout, aux: x.aux, expertRows: x.expertRows, moeStats: [...(x.moeStats ?? []), ...stats] }
  // Shares of the step's mean need no division by the micro-batches (all depths alike: the step's tokens).
  const perToken = tokens.stepLabels !== undefined
  return { after, loss: scale(sum as Tensor.Tensor, perToken ? weight : weight / c.microBatchesPerStep) }
}
