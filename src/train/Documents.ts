/**
 * Documents: sequences packed from several documents, each ended by an end-of-document token
 * (the tokenizer's EOD id, `--eod-token`), as Megatron's GPT dataset reads them from its
 * micro-batch's input tokens:
 *
 *   --reset-attention-mask  a token attends only to its own document: the document of position
 *                           i starts after the last EOD before i (an EOD belongs to the document
 *                           it ends), so firstKeys[i] = 1 + that EOD's position, or 0
 *   --reset-position-ids    RoPE's position of token i is i - firstKeys[i], its place in its
 *                           document
 *   --eod-mask-loss         the position whose input is an EOD predicts the next document's
 *                           first token from nothing of it: its target is left out of the loss
 *                           (Megatron's loss_mask[tokens == eod] = 0)
 *
 * Decisions. The loss stays each micro-batch's mean over its kept labels, then the mean over the
 * micro-batches (Megatron's default; not --calculate-per-token-loss). RoPE is relative, so with
 * --reset-attention-mask the reset positions change nothing but rounding; without it they restart
 * the positions of sequences that attend across documents (Megatron's BSHD path applies
 * position_ids to learned absolute embeddings only and leaves RoPE at 0..S-1; pleat gives RoPE the
 * reset positions, as transformers' position_ids do). Multi-token prediction's layers attend
 * within the same documents (the mask is not shifted, as Megatron's) and their targets shift with
 * the left-out ones (MultiTokenPrediction.shifted).
 */
import * as ModelContext from "../model/ModelContext.js"

/**
 * What a run does with end-of-document tokens.
 * @category models
 */
export interface Settings {
  /** The end-of-document token id. */
  readonly eod: number
  readonly resetAttentionMask: boolean
  readonly resetPositionIds: boolean
  readonly eodMaskLoss: boolean
}

/**
 * The documents of a micro-batch, one entry per token ([B, S], sequence-major): where each
 * token's document starts (with --reset-attention-mask) and its place in it (with
 * --reset-position-ids).
 * @category models
 */
export interface Marks {
  readonly firstKeys?: Int32Array | undefined
  readonly positions?: Int32Array | undefined
}

/** The first position of each token's document, sequence by sequence of `seq` tokens. */
const firstKeysOf = (tokens: Int32Array, seq: number, eod: number): Int32Array => {
  const first = new Int32Array(tokens.length)
  for (let start = 0; start < tokens.length; start += seq) {
    let begins = 0
    for (let i = 0; i < seq; i++) {
      first[start + i] = begins
      if (tokens[start + i] === eod) begins = i + 1
    }
  }
  return first
}

/**
 * The micro-batch's marks under `settings` (none where neither the mask nor the positions are reset).
 * @category constructors
 */
export const marksOf = (settings: Settings, tokens: Int32Array, seq: number): Marks | undefined => {
  if (!settings.resetAttentionMask && !settings.resetPositionIds) return undefined
  const firstKeys = firstKeysOf(tokens, seq, settings.eod)
  if (!settings.resetPositionIds) return { firstKeys }
  const positions = Int32Array.from(firstKeys, (first, t) => (t % seq) - first)
  return settings.resetAttentionMask ? { firstKeys, positions } : { positions }
}

/**
 * The targets with those after an end-of-document input left out (--eod-mask-loss); the same
 * array otherwise.
 * @category mapping
 */
export const maskedTargets = (settings: Settings, tokens: Int32Array, targets: Int32Array): Int32Array => {
  if (!settings.eodMaskLoss) return targets
  return Int32Array.from(targets, (t, i) => (tokens[i] === settings.eod ? ModelContext.ignoredTarget : t))
}
