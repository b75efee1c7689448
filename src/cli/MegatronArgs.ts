/**
 * MegatronArgs: rewrites a `pleat train` command line that uses Megatron-LM's argument names into
 * pleat's, before the flags are parsed. Renamed flags stay as typed (Flags.collect takes them as
 * aliases, so a problem names them as written); the rest is rewritten here:
 *
 *   --bf16, --recompute-activations,         --precision bf16, --recompute selective,
 *   --moe-apply-probs-on-input,              --probs-at input, --rope-type llama3
 *   --use-rope-scaling                       (MegatronRewrites.switchRewrites)
 *   --recompute-granularity G                --recompute G (full: every layer from its input,
 *   --recompute-method uniform               Megatron-LM's uniform method; block is refused)
 *   --moe-router-load-balancing-type T...    --aux-loss T:C,... (MegatronRewrites.balancingFlags:
 *   --moe-aux-loss-coeff C...                coefficient 0 where only the type is given; sinkhorn
 *                                            and quantile_balancing their routers, --aux-loss none)
 *   --window-size L,0                        --sliding-window L+1 (L tokens back and the token)
 *   --position-embedding-type rope|yarn|none nothing | --rope-type yarn | --no-rope-freq 1
 *   --rotary-seq-len-interpolation-factor N  --rope-type linear --rotary-scaling-factor N
 *                                            (these three: MegatronRewrites.valueExpansions)
 *   --lr-decay-style WSD, ...                their values in pleat's spelling (valueRewrites)
 *   --data-path PREFIX (--train-data-path)   --data PREFIX.bin --data-dtype (from PREFIX.idx)
 *   --valid-data-path PREFIX                 --eval-data PREFIX.bin
 *   --train-data-path W PREFIX W PREFIX ...  --data-blend "W PREFIX.bin ..." (other blends refused)
 *   --data-path PREFIX [--split S]           split S (969,30,1 by default) of its documents:
 *                                            --data-range and --eval-data (MegatronSplit)
 *   --vocab-size V (NullTokenizer's)         --vocab V padded to a multiple of
 *   --make-vocab-size-divisible-by D         D (128) x tp, as Megatron-LM pads it (MegatronDefaults)
 *   --tokenizer-type NullTokenizer           nothing (pleat trains on ids); other tokenizers refused
 *   --moe-router-topk-limited-devices N      --num-groups EP --group-topk N (EP from the command line)
 *   --account-for-embedding-in-pipeline-split, --account-for-loss-in-pipeline-split
 *                                            --pipeline-layout (MegatronPipelineSplit)
 *   --num-layers-per-virtual-pipeline-stage N --vpp (layers / pp) / N, from --num-layers and
 *                                            --pipeline-model-parallel-size on the command line
 *                                            (none where that is 1), as Megatron-LM derives it
 *   --recompute-modules M...                 --recompute-modules M,M (layernorm taken without
 *                                            effect; none left: none)
 *   --load DIR                               --resume DIR when DIR holds a complete checkpoint
 *                                            (or is not a directory: --resume says why); nothing
 *                                            when DIR is absent, empty or pleat's without a
 *                                            complete one (the run starts from its initialization,
 *                                            as Megatron-LM's does); refused when it holds files
 *                                            pleat did not write
 *
 * Whether any Megatron-LM name was used decides whether Megatron-LM's defaults apply to what
 * the command leaves unset (MegatronDefaults). The architecture defaults of Megatron-LM that
 * pleat cannot build (LayerNorm, GeLU, learned positions, dropout 0.1) are listed
 * for a notice when the command leaves them at Megatron-LM's default.
 */
import { existsSync, statSync } from "node:fs"
import * as ConfigError from "../errors/ConfigError.js"
import * as Launcher from "../runtime/Launcher.js"
import * as MpiProcess from "../runtime/MpiProcess.js"
import * as CheckpointDirectory from "../train/CheckpointDirectory.js"
import * as ModelConfig from "../train/ModelConfig.js"
import type * as TokenFile from "../train/TokenFile.js"
import * as Flags from "./Flags.js"
import * as MegatronPipelineSplit from "./MegatronPipelineSplit.js"
import * as MegatronDefaults from "./MegatronDefaults.js"
import * as MegatronNames from "./MegatronNames.js"
import * as MegatronSplit from "./MegatronSplit.js"
import * as MegatronRewrites from "./MegatronRewrites.js"
import type * as RunConfig from "./RunConfig.js"

/**
 * A command line in pleat's names, and what the rewriting found.
 * @category models
 */
export interface Translated {
  readonly argv: ReadonlyArray<string>
  /** Whether any Megatron-LM name was used. */
  readonly megatron: boolean
  /** Megatron-LM flags accepted without effect, as typed, each with why. */
  readonly noEffect: ReadonlyArray<string>
  /** Megatron-LM defaults of the architecture pleat does not follow, left unset by the command. */
  readonly unfollowed: ReadonlyArray<string>
  /** Other things to tell the user (a --load with nothing to load). */
  readonly notes: ReadonlyArray<string>
  readonly problems: ReadonlyArray<ConfigError.ConfigError>
  /** --vocab-size and --make-vocab-size-divisible-by, for the padded vocabulary (MegatronDefaults). */
  readonly vocab?: { readonly size: number; readonly divisibleBy: number }
}

/**
 * Rewrites Megatron-LM's names in `argv` into pleat's; problems name the flags as typed.
 * @category constructors
 */
export const translate = (argv: ReadonlyArray<string>): Translated => {
  const out: Array<string> = []
  const noEffect: Array<string> = []
  const notes: Array<string> = []
  const problems: Array<ConfigError.ConfigError> = []
  const seen = new Set<string>()
  let types: Array<string> | undefined
  let coeffs: Array<string> | undefined
  let recomputeMethod: string | undefined
  let queryGroups: string | undefined
  const dataDtypes: Array<string> = []
  let vocabSize: number | undefined
  const derivedGiven: Array<[string, string]> = []
  const accounted = new Set<string>()
  let divisibleBy = 128
  // --data-path's dataset (split into training and validation documents: MegatronSplit) and --split.
  let splitting: { readonly prefix: string; readonly dtype: TokenFile.TokenDtype } | undefined
  let split: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const token = MegatronRewrites.tokenOf(arg)
    if (token === undefined) {
      out.push(arg)
      continue
    }
    const { name, inline } = token
    /** The flag's one value: after `=`, else the next argument (consumed). */
    const value = (): string | undefined => {
      if (inline !== undefined) return inline
      const next = argv[i + 1]
      if (next === undefined || MegatronRewrites.isFlag(next)) return undefined
      i++
      return next
    }
    /** The flag's values (nargs='+'): after `=`, else every argument up to the next flag. */
    const values = (): Array<string> => {
      if (inline !== undefined) return [inline]
      const list: Array<string> = []
      while (i + 1 < argv.length && !MegatronRewrites.isFlag(argv[i + 1])) list.push(argv[++i] as string)
      return list
    }
    const missing = (placeholder: string) => problems.push(ConfigError.make(`--${name}`, undefined, "needs a value", `write --${name} ${placeholder}`))
    if (Object.hasOwn(MegatronRewrites.valueRewrites, name)) {
      if (Object.hasOwn(MegatronNames.renamed, name)) seen.add(name)
      const v = value()
      const rewrite = v === undefined ? undefined : MegatronRewrites.valueRewrites[name]?.[v]
      out.push(v === undefined ? arg : `--${name}=${rewrite?.value ?? v}`)
      if (rewrite?.note !== undefined) noEffect.push(rewrite.note)
      continue
    }
    if (Object.hasOwn(MegatronNames.renamed, name)) {
      seen.add(name)
      if (name === "num-query-groups") queryGroups = inline ?? argv[i + 1]
      out.push(arg)
      continue
    }
    if (Object.hasOwn(MegatronNames.noEffect, name)) {
      seen.add(name)
      if (inline !== undefined) problems.push(ConfigError.make(`--${name}`, inline, "takes no value", `write --${name} alone`))
      else noEffect.push(`--${name}`)
      continue
    }
    if (Object.hasOwn(MegatronNames.valued, name)) {
      seen.add(name)
      const rule = MegatronNames.valued[name] as (typeof MegatronNames.valued)[string]
      const v = value()
      if (v === undefined) {
        missing(rule.accepts?.[0] ?? "VALUE")
        continue
      }
      const accepted = rule.accepts === undefined || rule.accepts.some((a) => (rule.numeric ? Number(v) === Number(a) && v.trim() !== "" : v === a))
      if (accepted) noEffect.push(`--${name} ${v}`)
      else
        problems.push(
          ConfigError.make(
            `--${name}`,
            v,
            `is not what pleat trains: ${rule.pleat}`,
            `write --${name} ${(rule.accepts as ReadonlyArray<string>)[0]}, or train this model elsewhere`,
          ),
        )
      continue
    }
    if (Object.hasOwn(MegatronNames.unsupported, name)) {
      seen.add(name)
      problems.push(
        ConfigError.make(
          `--${name}`,
          inline ?? (argv[i + 1] === undefined || MegatronRewrites.isFlag(argv[i + 1]) ? true : argv[i + 1]),
          "is Megatron-LM's, with no pleat equivalent",
          MegatronNames.unsupported[name] as string,
        ),
      )
      if (inline === undefined && argv[i + 1] !== undefined && !MegatronRewrites.isFlag(argv[i + 1])) i++
      continue
    }
    if (Object.hasOwn(MegatronRewrites.switchRewrites, name) || name === "disable-bias-linear" || MegatronPipelineSplit.switches.includes(name)) {
      seen.add(name)
      if (inline !== undefined) problems.push(ConfigError.make(`--${name}`, inline, "takes no value", `write --${name} alone`))
      else if (MegatronPipelineSplit.switches.includes(name)) accounted.add(name)
      // Without biases is pleat's own default: --disable-bias-linear only keeps Megatron-LM's (MegatronDefaults) from applying.
      else if (name !== "disable-bias-linear") out.push(MegatronRewrites.switchRewrites[name] as string)
      continue
    }
    if (Object.hasOwn(MegatronRewrites.valueExpansions, name)) {
      seen.add(name)
      const v = value()
      const expansion = MegatronRewrites.valueExpansions[name] as MegatronRewrites.ValueExpansion
      const flags = v === undefined ? undefined : expansion.expand(v)
      if (flags === undefined) missing(expansion.placeholder)
      else if (ConfigError.isConfigError(flags)) problems.push(flags)
      else out.push(...flags)
      continue
    }
    switch (name) {
      case "recompute-method":
      case "recompute-num-layers": {
        seen.add(name)
        const v = value()
        if (v === undefined) missing(name === "recompute-method" ? "uniform" : "N")
        else if (name === "recompute-method") recomputeMethod = v
        continue
      }
      case "moe-router-load-balancing-type":
      case "moe-aux-loss-coeff": {
        seen.add(name)
        const list = values()
        if (list.length === 0) missing(name === "moe-aux-loss-coeff" ? "C" : "aux_loss")
        else if (name === "moe-aux-loss-coeff") coeffs = list
        else types = list
        continue
      }
      case "data-path":
      case "train-data-path":
      case "valid-data-path": {
        seen.add(name)
        const list = values()
        const data = list.length === 0 ? undefined : MegatronRewrites.dataPathOf(name, list)
        if (data === undefined) missing("PREFIX")
        else if (ConfigError.isConfigError(data)) problems.push(data)
        else {
          out.push(data.flag)
          dataDtypes.push(...data.dtypes)
          if (name === "data-path" && data.prefix !== undefined) splitting = { prefix: data.prefix, dtype: data.dtypes[0] as TokenFile.TokenDtype }
        }
        continue
      }
      case "split": {
        seen.add(name)
        split = value()
        if (split === undefined) missing("969,30,1")
        continue
      }
      case "vocab-size":
      case "make-vocab-size-divisible-by": {
        seen.add(name)
        const v = value()
        const problem = v === undefined ? undefined : Flags.integerProblem(v, {}, `write --${name}`)
        if (v === undefined) missing("N")
        else if (problem !== undefined) problems.push(ConfigError.make(`--${name}`, v, problem.reason, problem.fix))
        else if (name === "vocab-size") vocabSize = Number(v)
        else divisibleBy = Number(v)
        continue
      }
      case "recompute-modules": {
        // pleat's flag too (not a Megatron-LM name alone): its list also comes space-separated.
        const modules = MegatronRewrites.recomputeModulesOf(values())
        if (ConfigError.isConfigError(modules)) problems.push(modules)
        else {
          out.push(modules.flag)
          noEffect.push(...modules.noEffect)
        }
        continue
      }
      case "num-layers-per-virtual-pipeline-stage":
      case "moe-router-topk-limited-devices": {
        seen.add(name)
        const v = value()
        if (v === undefined) missing("N")
        else derivedGiven.push([name, v])
        continue
      }
      case "tokenizer-type": {
        seen.add(name)
        const v = value()
        if (v === undefined) missing("NullTokenizer")
        else if (v === "NullTokenizer") noEffect.push(`--${name} ${v}`)
        else
          problems.push(
            ConfigError.make(
              "--tokenizer-type",
              v,
              "is a tokenizer; pleat trains on token ids",
              "tokenize beforehand, and give the vocabulary as --vocab-size V (padded as Megatron-LM pads it) or --vocab",
            ),
          )
        continue
      }
      case "load": {
        seen.add(name)
        const v = value()
        if (v === undefined) missing("DIR")
        else if (existsSync(v) && (!statSync(v).isDirectory() || CheckpointDirectory.locate(v) !== undefined)) out.push(`--resume=${v}`)
        else if (existsSync(v) && !CheckpointDirectory.mayWrite(v))
          // Files pleat did not write (a Megatron-LM checkpoint, say): never trained over in silence.
          problems.push(
            ConfigError.make(
              "--load",
              v,
              "holds no checkpoint of pleat's (Megatron-LM's own are not read)",
              "load a directory pleat's --save wrote; bring a Megatron-LM model in through Hugging Face (pleat import)",
            ),
          )
        else notes.push(`--load ${v} holds no checkpoint: the run starts from its initialization (as Megatron-LM's does)`)
        continue
      }
      default:
        out.push(arg)
    }
  }
  if (recomputeMethod !== undefined && recomputeMethod !== "uniform")
    problems.push(
      ConfigError.make("--recompute-method", recomputeMethod, "recomputes only some layers; pleat's full recompute covers every layer", "write --recompute-method uniform"),
    )
  else if (recomputeMethod !== undefined) noEffect.push("--recompute-method uniform")
  if (new Set(dataDtypes).size > 1)
    problems.push(
      ConfigError.make(
        "--valid-data-path",
        dataDtypes.join(" and "),
        "stores its ids otherwise than the training data; pleat reads both alike",
        "write both datasets with the same dtype",
      ),
    )
  else if (dataDtypes.length > 0) out.push(`--data-dtype=${dataDtypes[0]}`)
  const perSplit = seen.has("train-data-path") || seen.has("valid-data-path")
  if (split !== undefined && (splitting === undefined || perSplit))
    problems.push(
      ConfigError.make("--split", split, "splits --data-path's documents alone", "give --data-path PREFIX without --train-data-path and --valid-data-path, or drop --split"),
    )
  else if (splitting !== undefined && !perSplit && !argv.some((a) => a === "--eval-data" || a.startsWith("--eval-data="))) {
    const made = MegatronSplit.argsOf(splitting.prefix, splitting.dtype, split)
    if (ConfigError.isConfigError(made)) problems.push(made)
    else {
      out.push(...made.args)
      notes.push(made.note)
    }
  }
  const balancing = MegatronRewrites.balancingFlags(types, coeffs)
  if (ConfigError.isConfigError(balancing)) problems.push(balancing)
  else if (balancing !== undefined) out.push(...balancing)
  if (seen.has("num-query-groups") && !seen.has("group-query-attention"))
    problems.push(
      ConfigError.make(
        "--num-query-groups",
        queryGroups,
        "takes effect in Megatron-LM only with --group-query-attention (without it every head has its own keys and values)",
        "add --group-query-attention, or drop --num-query-groups",
      ),
    )
  const layout = accounted.size === 0 ? undefined : MegatronPipelineSplit.layoutFlag(argv, accounted)
  if (ConfigError.isConfigError(layout)) problems.push(layout)
  else if (layout !== undefined) out.push(layout)
  for (const [name, v] of derivedGiven) {
    const flags = (MegatronRewrites.derived[name] as (typeof MegatronRewrites.derived)[string])(argv, v)
    if (ConfigError.isConfigError(flags)) problems.push(flags)
    else out.push(...flags)
  }
  if (vocabSize !== undefined && argv.some((a) => a === "--vocab" || a.startsWith("--vocab=")))
    problems.push(ConfigError.make("--vocab-size", vocabSize, "and --vocab both give the vocabulary", "give one: --vocab-size V (padded) or --vocab N (as is)"))
  const megatron = seen.size > 0
  const vocab = vocabSize === undefined ? {} : { vocab: { size: vocabSize, divisibleBy } }
  return { argv: out, megatron, noEffect, unfollowed: megatron ? MegatronRewrites.unfollowedOf(seen, argv.includes("--quick-geglu")) : [], notes, problems, ...vocab }
}

/**
 * The flags of `argv` against `specs` with Megatron-LM's names taken (problems of both passes,
 * the translation's first), how RunConfig is to decode them, and the lines to tell the user.
 * @category constructors
 */
export const collect = (
  argv: ReadonlyArray<string>,
  specs: Readonly<Record<string, Flags.FlagSpec>>,
): { readonly collected: Flags.Collected; readonly how: RunConfig.Given; readonly notices: ReadonlyArray<string> } => {
  const t = translate(argv)
  const collected = Flags.collect(t.argv, specs, MegatronNames.renamed)
  const context: MegatronDefaults.Context = {
    ...(t.vocab === undefined ? {} : { vocab: t.vocab }),
    launched: Launcher.fromEnvironment().launcher === "none" ? undefined : MpiProcess.worldSize(),
    swiglu: argv.includes("--swiglu"),
    biasLinear: !argv.includes("--disable-bias-linear"),
    groupQueryAttention: argv.includes("--group-query-attention") && !argv.some((a) => a === "--num-query-groups" || a.startsWith("--num-query-groups=")),
  }
  const notices = [
    ...(t.noEffect.length === 0 ? [] : [`no effect here (what pleat does anyway, how Megatron-LM computes, or what it logs): ${t.noEffect.join(", ")}`]),
    ...(t.unfollowed.length === 0 ? [] : [`Megatron-LM's defaults not followed: ${t.unfollowed.join("; ")}`]),
    ...t.notes,
    ...(t.megatron && !["num-experts", "experts", "model", "config"].some((n) => argv.some((a) => a === `--${n}` || a.startsWith(`--${n}=`)))
      ? [`no --num-experts: Megatron-LM would build a dense model; pleat's layers are MoE, with its default ${ModelConfig.small.experts} experts`]
      : []),
  ]
  return {
    collected: { ...collected, problems: [...t.problems, ...collected.problems] },
    how: { typed: collected.typed, ...(t.megatron ? { megatron: (chosen: Readonly<Record<string, unknown>>) => MegatronDefaults.layer(chosen, context) } : {}) },
    notices,
  }
}
