/**
 * MegatronDefaults: Megatron-LM's defaults, for a `pleat train` command that uses Megatron-LM's
 * names (MegatronArgs): the settings the command, its config file and its --model preset leave
 * unset take Megatron-LM's value instead of pleat's, so that an argument list written for
 * Megatron-LM trains the model and schedule it names there. They sit between pleat's defaults
 * and the preset; a message about one names it as "(Megatron-LM's default)".
 *
 *   tp, cp, pp, ep             1
 *   etp                        tp
 *   world                      the launch's processes under a launcher, else the fewest ranks
 *                              both mappings fit: lcm(tp x cp, etp x ep) x pp (data parallel 1
 *                              where it can be)
 *   kv-heads                   heads (1 with --group-query-attention and no --num-query-groups)
 *   ffn                        with --swiglu floor(8 x hidden / 3 / 64) x 64, else 4 x hidden
 *   moe-ffn                    ffn
 *   global-batch               micro-batch x the attention's data-parallel size
 *   init-method-std            0.02
 *   norm-eps                   1e-5
 *   aux-loss                   aux:0 (Megatron-LM's aux_loss at its coefficient 0)
 *   warmup-steps, min-lr       0
 *   adam-beta2                 0.999
 *   add-bias-linear            on, unless --disable-bias-linear (biases on q, k, v, o and every
 *                              MLP's projections; a preset's or config file's choice stays)
 *   lr-decay-style             linear
 *   vocab                      with --vocab-size V: V rounded up to a multiple of
 *                              --make-vocab-size-divisible-by (128) x tp
 *
 * What Megatron-LM leaves without a default (--lr, --seq-length, --num-layers, ...) keeps pleat's.
 */
import * as ModelConfig from "../train/ModelConfig.js"

/** What decides the derived defaults besides the chosen settings. */
export interface Context {
  /** The launch's process count, when a launcher started this process. */
  readonly launched: number | undefined
  readonly swiglu: boolean
  /** Megatron-LM's add_bias_linear: true unless --disable-bias-linear. */
  readonly biasLinear: boolean
  readonly groupQueryAttention: boolean
  /** --vocab-size and --make-vocab-size-divisible-by, when given. */
  readonly vocab?: { readonly size: number; readonly divisibleBy: number }
}

const positive = (v: unknown): number | undefined => (typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : undefined)

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b))

/**
 * Megatron-LM's defaults for the settings `chosen` (preset, file and flags, by key) leaves unset.
 * @category constructors
 */
export const layer = (chosen: Readonly<Record<string, unknown>>, context: Context): Record<string, unknown> => {
  const has = (k: string) => chosen[k] !== undefined
  const pick = (k: string, fallback: number): number | undefined => (has(k) ? positive(chosen[k]) : fallback)
  const out: Record<string, unknown> = {}
  const set = (k: string, v: unknown) => {
    if (!has(k) && v !== undefined) out[k] = v
  }
  for (const k of ["tp", "cp", "pp", "ep"]) set(k, 1)
  const tp = pick("tp", 1)
  const cp = pick("cp", 1)
  const pp = pick("pp", 1)
  const ep = pick("ep", 1)
  set("etp", tp)
  const etp = has("etp") ? positive(chosen.etp) : tp
  const fits = tp !== undefined && cp !== undefined && pp !== undefined && ep !== undefined && etp !== undefined
  const attention = fits ? tp * cp : undefined
  const moe = fits ? etp * ep : undefined
  set("world", context.launched ?? (attention === undefined || moe === undefined ? undefined : ((attention * moe) / gcd(attention, moe)) * (pp as number)))
  const world = has("world") ? positive(chosen.world) : (out.world as number | undefined)
  const heads = pick("heads", ModelConfig.small.heads)
  set("kv-heads", context.groupQueryAttention ? 1 : heads)
  const hidden = pick("hidden", ModelConfig.small.hidden)
  set("ffn", hidden === undefined ? undefined : context.swiglu ? Math.floor((8 * hidden) / 3 / 64) * 64 : 4 * hidden)
  set("moe-ffn", has("ffn") ? chosen.ffn : out.ffn)
  const microBatch = pick("micro-batch", 1)
  const dp = world !== undefined && attention !== undefined && world % (attention * (pp as number)) === 0 ? world / (attention * (pp as number)) : undefined
  set("global-batch", microBatch === undefined || dp === undefined ? undefined : microBatch * dp)
  set("init-method-std", 0.02)
  set("norm-eps", 1e-5)
  set("aux-loss", "aux:0")
  set("warmup-steps", 0)
  set("min-lr", 0)
  set("adam-beta2", 0.999)
  if (context.biasLinear) set("add-bias-linear", true)
  set("lr-decay-style", "linear")
  if (context.vocab !== undefined && tp !== undefined) {
    const multiple = context.vocab.divisibleBy * tp
    set("vocab", Math.ceil(context.vocab.size / multiple) * multiple)
  }
  return out
}
