/**
 * DocumentFlags: what a run does with the end-of-document tokens of packed sequences (Megatron's
 * flags, with the EOD id that Megatron takes from its tokenizer given by `--eod-token`), as
 * RunConfig's settings and as the trainer's Documents.Settings; and how the loss averages over
 * the step (`--calculate-per-token-loss`).
 */
import * as ConfigError from "../errors/ConfigError.js"
import type * as Documents from "../train/Documents.js"
import type * as RunConfig from "./RunConfig.js"
import { flag, optionalWhole } from "./SettingKinds.js"

/**
 * The end-of-document settings, as RunConfig's.
 * @category configuration
 */
export const documentSettings = {
  "eod-token": optionalWhole("the end-of-document token id of the data (the tokenizer's EOD; --data's documents are packed back to back, each ended by it)", "ID"),
  "reset-attention-mask": flag("attention stays within each document: a token attends only to tokens after the last EOD before it (needs --eod-token)"),
  "reset-position-ids": flag("RoPE's positions restart at 0 after every EOD (needs --eod-token)"),
  "eod-mask-loss": flag("leave out of the loss the positions whose input is the EOD (they would predict the next document's first token; needs --eod-token)"),
  "calculate-per-token-loss": flag(
    "each loss the mean over the step's kept tokens (every micro-batch and dp rank), not the mean of the micro-batches' means: micro-batches that keep fewer tokens weigh less (the same without --eod-mask-loss)",
  ),
} as const

/** The settings that read the EOD id. */
const readers = ["reset-attention-mask", "reset-position-ids", "eod-mask-loss"] as const

/**
 * The run's end-of-document settings, or undefined where none is on; throws a ConfigError for
 * one without --eod-token, --eod-token with none, or an id outside the vocabulary.
 * @category constructors
 */
export const documentsOf = (c: RunConfig.RunConfig): Documents.Settings | undefined => {
  const on = readers.filter((k) => c[k])
  const eod = c["eod-token"]
  if (eod === undefined) {
    const first = on[0]
    if (first !== undefined) throw ConfigError.make(first, true, "needs the end-of-document token id", `add --eod-token ID (the tokenizer's EOD), or drop --${first}`)
    return undefined
  }
  if (on.length === 0) throw ConfigError.make("eod-token", eod, "is read by nothing", "add --reset-attention-mask, --reset-position-ids or --eod-mask-loss, or drop --eod-token")
  if (eod >= c.vocab) throw ConfigError.make("eod-token", eod, `is not an id of the vocabulary of ${c.vocab}`, `use an id below ${c.vocab} (the tokenizer's EOD)`)
  return { eod, resetAttentionMask: c["reset-attention-mask"], resetPositionIds: c["reset-position-ids"], eodMaskLoss: c["eod-mask-loss"] }
}
