/**
 * Stage: the forward of one model chunk (a run of layers) on one rank, for one micro-batch.
 *
 * Rows are this rank's tokens: the micro-batch's sequences at this cp rank's positions
 * (load-balanced chunks), batch-major, and under sequence parallelism (tp > 1) this tp
 * member's block of them. The first chunk embeds token ids (vocab-parallel); the last applies
 * the final norm, the vocab-parallel output layer and cross-entropy.
 *
 * Loss scaling: the step loss is the mean over the global batch's micro-batches of (token-mean
 * cross-entropy + aux losses). A cp rank sees 1/cp of a micro-batch's tokens, so its share of
 * the cross-entropy is (local mean) / (cp * M * dp); each rank's aux terms (already split so
 * that they add up over tp-cp) are divided by M * dp. Gradients are then summed, never
 * averaged, over dp-cp (and edp for experts).
 */
import * as Effect from "effect/Effect"
import * as ContextParallel from "../attention/ContextParallel.js"
import * as DenseMlp from "../dataflow/DenseMlp.js"
import * as ParallelLinear from "../dataflow/ParallelLinear.js"
import type * as SelfAttention from "../attention/SelfAttention.js"
import * as VocabParallel from "../attention/VocabParallel.js"
import type { Group } from "../comm/Group.js"
import * as Block from "../model/Block.js"
import type * as Dispatcher from "../moe/Dispatcher.js"
import * as MoeLayer from "../moe/MoeLayer.js"
import { add, scale } from "../tensor/ops/Elementwise.js"
import { rmsNorm } from "../tensor/ops/Norm.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as Data from "./Data.js"
import * as ModelConfig from "./ModelConfig.js"

/**
 * The groups a rank trains with.
 * @category models
 */
export interface TrainGroups {
  readonly tp: Group
  readonly cp: Group
  readonly tpCp: Group
  readonly expert: Dispatcher.ExpertGroups
}

/**
 * What a chunk forward needs to know about its rank and step.
 * @category models
 */
export interface StageContext {
  readonly model: ModelConfig.ModelConfig
  readonly microBatch: number
  readonly groups: TrainGroups
  readonly cpRank: number
  readonly tpRank: number
  /** M * dp: micro-batches in the global batch. */
  readonly microBatchesPerStep: number
  readonly auxLossCoeff: number
  /** Parameters by name (leaves on the micro-batch's tape). */
  readonly param: (name: string) => Tensor.Tensor
}

/**
 * This rank's rows of a micro-batch: positions of its cp chunk, batch-major, its tp block.
 * @category mapping
 */
export const localIndex = (c: StageContext): Int32Array => {
  const seq = c.model.seq
  const cp = c.groups.cp.ranks.length
  const tp = c.groups.tp.ranks.length
  const positions = ContextParallel.positions(seq, cp, c.cpRank)
  const rows: Array<number> = []
  for (let b = 0; b < c.microBatch; b++) for (const p of positions) rows.push(b * seq + p)
  const per = rows.length / tp
  return Int32Array.from(rows.slice(c.tpRank * per, (c.tpRank + 1) * per))
}

/** All rows of this cp rank (before the tp split), for the vocab-parallel parts. */
const cpRows = (c: StageContext): Int32Array => {
  const positions = ContextParallel.positions(c.model.seq, c.groups.cp.ranks.length, c.cpRank)
  const rows: Array<number> = []
  for (let b = 0; b < c.microBatch; b++) for (const p of positions) rows.push(b * c.model.seq + p)
  return Int32Array.from(rows)
}

/**
 * The output of a chunk: the hidden rows it passes on (or the loss, on the last chunk) and the
 * aux-loss terms of its MoE layers, both already scaled into the step loss.
 * @category models
 */
export interface ChunkOutput {
  readonly hidden: Tensor.Tensor | undefined
  readonly loss: Tensor.Tensor | undefined
  readonly aux: Tensor.Tensor
  /** Rows each local expert processed, per MoE layer of the chunk (for load imbalance). */
  readonly expertRows: ReadonlyArray<ReadonlyArray<number>>
}

/**
 * Runs layers [first, last) on `input` (hidden rows) or on the micro-batch's token ids.
 * @category combinators
 */
export const forward = (c: StageContext, layers: readonly [number, number], input: Tensor.Tensor | undefined, data: Data.MicroBatch, isFirst: boolean, isLast: boolean) =>
  Effect.gen(function* () {
    const m = c.model
    const tp = c.groups.tp
    const sp = tp.ranks.length > 1
    const par = { tp, sequenceParallel: sp }
    let x: Tensor.Tensor
    if (isFirst) {
      const ids = Int32Array.from(cpRows(c), (r) => data.tokens[r] as number)
      x = yield* VocabParallel.embedding(c.param("embedding"), ids, m.vocab, tp, sp)
    } else {
      x = input as Tensor.Tensor
    }
    let aux = Tensor.zeros([], { dtype: x.dtype })
    const expertRows: Array<ReadonlyArray<number>> = []
    const attention: SelfAttention.AttentionConfig = { batch: c.microBatch, seq: m.seq, heads: m.heads, kvHeads: m.kvHeads, headDim: ModelConfig.headDim(m), tp, cp: c.groups.cp, sequenceParallel: sp }
    for (let l = layers[0]; l < layers[1]; l++) {
      const p = (name: string) => c.param(`layers.${l}.${name}`)
      const weights = { attentionNorm: p("attentionNorm"), ffnNorm: p("ffnNorm"), attention: { wq: p("wq"), wk: p("wk"), wv: p("wv"), wo: p("wo") } }
      const ffn = ModelConfig.isMoe(m, l)
        ? (tokens: Tensor.Tensor) =>
            Effect.map(
              MoeLayer.forward(
                tokens,
                { router: p("router"), experts: { wGate: p("experts.wGate"), wUp: p("experts.wUp"), wDown: p("experts.wDown") } },
                { numExperts: m.experts, router: { topk: m.topk, scoreFunction: "softmax" }, auxLossCoeff: c.auxLossCoeff, tpCp: c.groups.tpCp },
                c.groups.expert,
              ),
              (r) => {
                aux = add(aux, r.loss)
                expertRows.push(r.report.rowsPerLocalExpert)
                return r.output
              },
            )
        : (tokens: Tensor.Tensor) => DenseMlp.forward(tokens, { wGate: p("wGate"), wUp: p("wUp"), wDown: p("wDown") }, par)
      x = yield* Block.forward(x, weights, attention, c.cpRank, ffn)
    }
    const auxScaled = scale(aux, 1 / c.microBatchesPerStep)
    if (!isLast) return { hidden: x, loss: undefined, aux: auxScaled, expertRows } satisfies ChunkOutput
    const logits = yield* ParallelLinear.columnParallel(rmsNorm(x, c.param("finalNorm")), c.param("output"), par)
    const targets = Int32Array.from(cpRows(c), (r) => data.targets[r] as number)
    const ce = yield* VocabParallel.crossEntropy(logits, targets, m.vocab, tp)
    const loss = scale(ce, 1 / (c.groups.cp.ranks.length * c.microBatchesPerStep))
    return { hidden: undefined, loss, aux: auxScaled, expertRows } satisfies ChunkOutput
  })
