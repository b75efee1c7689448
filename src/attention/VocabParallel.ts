/**
 * VocabParallel: the embedding and the output layer with the vocabulary split over TP, and the
 * cross-entropy computed without ever gathering the full logits (Megatron's vocab-parallel
 * cross-entropy).
 *
 * Member i of tp holds vocabulary rows [i*V/tp, (i+1)*V/tp).
 *   embedding: each member looks up the ids it owns (zeros for the others); the partial rows
 *     are summed over tp (allReduce, or reduceScatter into sequence-parallel rows).
 *   cross-entropy of logits [N, V/tp] (column-parallel output layer): the row max and the sum
 *     of exponentials are reduced over tp, the target's logit comes from the member that owns
 *     it; loss_i = log(sum_j exp(x_ij - m_i)) + m_i - x_i[target]. Backward is local:
 *     d logits = (softmax - onehot) restricted to the member's columns, no communication.
 *
 * The `Laid` variants declare the layouts: the lookup gives rows partial over tp, which the
 * typed channel (LaidCollective) completes; the cross-entropy needs logits whose vocabulary
 * columns are split over tp and gives each rank's token mean, partial over the axes its rows
 * are split over. (Its row max and sums are statistics reduced over tp, not tensors on the tape.)
 */
import * as Effect from "effect/Effect"
import { Communicator } from "../comm/Communicator.js"
import type { Group } from "../comm/Group.js"
import * as LaidCollective from "../dataflow/LaidCollective.js"
import { LayoutError } from "../dataflow/Layout.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Autograd from "../tensor/Autograd.js"
import * as Place from "../tensor/device/Place.js"
import * as DType from "../tensor/DType.js"
import { mul } from "../tensor/ops/Elementwise.js"
import * as Gather from "../tensor/ops/Gather.js"
import * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"
import * as LogitRows from "./LogitRows.js"

const reduce = (group: Group, values: Float64Array, op: "sum" | "max") => Effect.gen(() => reduceSteps(group, values, op))

/** reduce's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* reduceSteps(group: Group, values: Float64Array, op: "sum" | "max") {
  const comm = yield* Communicator
  const t = Tensor.fromStorage(values, [values.length, 1])
  const pending = yield* comm.issue(group, { op: "allReduce", tensor: t, reduce: op })
  return (yield* pending.await).data as Float64Array
}

/**
 * Embedding with the table split by vocabulary over tp: table [V/tp, H], ids [N] of the whole
 * vocabulary; returns [N, H] replicated, or [N/tp, H] rows under sequence parallelism.
 * @category combinators
 */
export const embedding = (table: Tensor.Tensor, ids: Int32Array, vocab: number, tp: Group, sequenceParallel: boolean) =>
  Effect.map(embeddingLaid(table, ids, TensorLayout.make([TensorLayout.dim("tokens", ids.length)]), vocab, tp, sequenceParallel), (x) => x.tensor)

/**
 * The embedding of ids in layout `tokens` (one dim of token rows): the rows of the lookup in
 * the layout the typed channel over tp gives them (SP rows under sequence parallelism).
 * @category combinators
 */
export const embeddingLaid = (table: Tensor.Tensor, ids: Int32Array, tokens: TensorLayout.TensorLayout, vocab: number, tp: Group, sequenceParallel: boolean) =>
  Effect.gen(() => embeddingLaidSteps(table, ids, tokens, vocab, tp, sequenceParallel))

/** embeddingLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* embeddingLaidSteps(table: Tensor.Tensor, ids: Int32Array, tokens: TensorLayout.TensorLayout, vocab: number, tp: Group, sequenceParallel: boolean) {
  const comm = yield* Communicator
  const n = tp.ranks.length
  const me = tp.ranks.indexOf(comm.rank)
  const per = vocab / n
  const start = me * per
  const local = new Int32Array(ids.length)
  const owned = new Array<boolean>(ids.length)
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw TensorError.shape("embedding", `id ${id} at position ${i} is outside the vocabulary 0..${vocab - 1}`)
    owned[i] = id >= start && id < start + per
    local[i] = owned[i] ? id - start : 0
  })
  // Rows this member does not own look up row 0 and are zeroed, so the sum over tp is exact.
  const looked = Gather.gatherRows(table, local)
  const mask = DType.allocate(table.dtype, ids.length)
  owned.forEach((o, i) => (mask[i] = o ? 1 : 0))
  const shard = { axis: "tp" as const, size: n }
  const partial = TensorLayout.attach(
    mul(looked, Tensor.fromStorage(mask, [ids.length, 1], { device: looked.device })),
    TensorLayout.partialOver(TensorLayout.withDim(tokens, "hidden", table.shape[1] as number), shard),
  )
  return sequenceParallel ? yield* LaidCollective.reduceScatter("tp", tp, partial) : yield* LaidCollective.allReduce("tp", tp, partial)
}

/**
 * The cross-entropy of laid logits: needs complete rows in sequence order whose vocabulary
 * columns are split over tp; gives the rows' mean, a scalar partial over the axes the rows are
 * split over (each rank's share of the mean over all of them).
 * @category combinators
 */
export const crossEntropyLaid = (logits: TensorLayout.WithLayout, targets: Int32Array, vocab: number, tp: Group, ignoreIndex = -100) =>
  Effect.gen(() => crossEntropyLaidSteps(logits, targets, vocab, tp, ignoreIndex))

/** crossEntropyLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* crossEntropyLaidSteps(logits: TensorLayout.WithLayout, targets: Int32Array, vocab: number, tp: Group, ignoreIndex: number) {
  const l = logits.layout
  const columnsSplit = tp.ranks.length === 1 || (l.dims[l.dims.length - 1]?.over.some((s) => s.axis === "tp") ?? false)
  if (!columnsSplit || l.partial.length > 0 || l.tokens !== "sequence" || l.dims.length !== 2) {
    const detail = `needs complete rows in sequence order with the vocabulary split over tp but the logits are ${TensorLayout.format(l)}`
    return yield* Effect.fail(new LayoutError({ op: "vocabParallelCrossEntropy", detail }))
  }
  const loss = yield* crossEntropy(logits.tensor, targets, vocab, tp, ignoreIndex)
  return TensorLayout.attach(loss, TensorLayout.make([], { partial: l.dims[0]?.over ?? [] }))
}

/**
 * Mean cross-entropy over the rows whose target is not `ignoreIndex`, from logits split by
 * vocabulary over tp ([N, V/tp] on each member); every member gets the same loss.
 * @category combinators
 */
export const crossEntropy = (logits: Tensor.Tensor, targets: Int32Array, vocab: number, tp: Group, ignoreIndex = -100) =>
  Effect.gen(() => crossEntropySteps(logits, targets, vocab, tp, ignoreIndex))

/** crossEntropy's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* crossEntropySteps(logits: Tensor.Tensor, targets: Int32Array, vocab: number, tp: Group, ignoreIndex: number) {
  const comm = yield* Communicator
  const n = tp.ranks.length
  const me = tp.ranks.indexOf(comm.rank)
  const [rows, cols] = logits.shape as [number, number]
  if (cols * n !== vocab) throw TensorError.shape("vocabParallelCrossEntropy", `logits [${rows}, ${cols}] x tp ${n} do not cover the vocabulary ${vocab}`)
  if (targets.length !== rows) throw TensorError.shape("vocabParallelCrossEntropy", `${targets.length} targets for ${rows} rows`)
  const start = me * cols
  const at = LogitRows.of(logits, rows, cols)
  const max = yield* reduce(tp, yield* at.rowMax(), "max")
  const sumExp = yield* at.rowSumExp(max)
  // Each row's sum, and the target's logit where this member owns it (0 elsewhere), summed over tp.
  const partial = new Float64Array(rows * 2)
  const owned: Array<number> = []
  let kept = 0
  for (let i = 0; i < rows; i++) {
    partial[2 * i] = sumExp[i] as number
    const t = targets[i] as number
    if (t === ignoreIndex) continue
    if (!Number.isInteger(t) || t < 0 || t >= vocab) throw TensorError.shape("vocabParallelCrossEntropy", `target ${t} of row ${i} is outside the vocabulary 0..${vocab - 1}`)
    kept++
    if (t >= start && t < start + cols) owned.push(i)
  }
  const picked = yield* at.pick(Int32Array.from(owned, (i) => i * cols + ((targets[i] as number) - start)))
  owned.forEach((i, j) => (partial[2 * i + 1] = picked[j] as number))
  const sums = yield* reduce(tp, partial, "sum")
  let total = 0
  const logSum = new Float64Array(rows)
  for (let i = 0; i < rows; i++) {
    logSum[i] = Math.log(sums[2 * i] as number) + (max[i] as number)
    if (targets[i] !== ignoreIndex) total += (logSum[i] as number) - (sums[2 * i + 1] as number)
  }
  const out = DType.allocate(logits.dtype, 1)
  out[0] = kept === 0 ? 0 : total / kept
  // The loss is a number (host storage); its gradient is made where the logits are.
  return Autograd.hostResult("vocabParallelCrossEntropy", [logits], out, [], (g) => {
    const scale = kept === 0 ? 0 : (g.readHost()[0] as number) / kept
    return [Place.tensor(at.grad(logSum, targets, ignoreIndex, start, scale), logits.shape, logits.device)]
  })
}
