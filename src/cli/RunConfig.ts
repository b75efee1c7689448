/**
 * RunConfig: the one run configuration of `pleat train` and `pleat verify`, its defaults and
 * its Schema, decoded from four layers: defaults < the model preset (`--model NAME`, scaled by
 * `--scale`) < the JSON config file < flags. A preset fills the model sizes and the router
 * options its model uses (ModelPresets); any of them given in the file or as a flag wins, so
 * `--model mixtral-8x7b --scale 64 --layers 4` is the scaled Mixtral with 4 layers.
 *
 * Every setting is written once in `settings`: its Schema, its default (if it has one), its
 * placeholder and its help. The flags, the help text (with each default shown), the accepted
 * keys of the config file and the decoding all derive from that table. Model sizes default to
 * ModelConfig.small and the axis order to Order.defaultOrder, so those defaults also live in
 * one place. Decoding keeps where each value came from, so an error names the setting as the
 * user wrote it (`--kv-heads`, or `"kv-heads" in job.json`) and an error caused by a default
 * says which defaults were in effect (`--world 1` fails because tp, cp, pp and ep default
 * to 2).
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as SchemaIssue from "effect/SchemaIssue"
import * as RecomputeModules from "../model/RecomputeModules.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as Order from "../mapping/Order.js"
import * as ChooseBackend from "../runtime/ChooseBackend.js"
import * as LrSchedule from "../train/LrSchedule.js"
import * as ModelPresets from "../train/ModelPresets.js"
import * as Optimizer from "../train/Optimizer.js"
import * as TokenFile from "../train/TokenFile.js"
import * as Flags from "./Flags.js"
import { documentSettings } from "./DocumentFlags.js"
import { routingSettings } from "./RoutingFlags.js"
import * as PresetSettings from "./PresetSettings.js"
import { modelShapeSettings } from "./ModelShapeSettings.js"
import { routerSettings } from "./RouterSettings.js"
import { choice, count, flag, maxSeed, PositiveInt, optionalChoice, optionalCount, optionalReal, optionalText, optionalWhole, seed, text, whole } from "./SettingKinds.js"

const optimizer = Optimizer.defaults(1)

/**
 * Every setting of a training run, in the order of the help text. The default job is a small
 * Mixtral-like model (4 layers, 8 experts, top-2) on 8 local ranks folded as attention
 * tp 2 x cp 2 x pp 2 and MoE ep 2 x edp 2 (etp 1): pipeline, tensor, context, expert and
 * (expert) data parallelism at once.
 * @category configuration
 */
export const settings = {
  world: count("ranks", 8),
  tp: count("attention tensor parallel", 2),
  cp: count("context parallel", 2),
  pp: count("pipeline parallel", 2),
  vpp: optionalCount("virtual pipeline stages per rank (interleaved 1F1B; none by default)"),
  "first-stage-layers": optionalWhole(
    "layers on the first pipeline rank (over its vpp chunks), the other ranks sharing the rest equally (Megatron's --decoder-first-pipeline-num-layers; an equal share by default)",
  ),
  "last-stage-layers": optionalWhole("layers on the last pipeline rank (over its vpp chunks), as --first-stage-layers (Megatron's --decoder-last-pipeline-num-layers)"),
  "pipeline-layout": optionalText(
    "every pipeline stage's layers (Megatron's --pipeline-model-parallel-layout): stages in order, separated by |, of E (embedding, first), t (a layer), m (an MTP layer, in the last stage) and L (loss, last); x*N and (...)*N repeat; pp x vpp stages set vpp; e.g. Et|tt|tt|tL",
    "LAYOUT",
  ),
  ep: count("expert parallel", 2),
  etp: count("expert tensor parallel", 1),
  order: text("axis order, leftmost fastest", Order.defaultOrder, "O"),
  model: optionalChoice(ModelPresets.names, "a model preset's sizes and router options (flags and the config file override them; none by default)", "NAME"),
  scale: count("shrink the --model preset by N for a CPU run: widths, vocab and seq / N, layers ceil(/N) to even; experts and top-k kept", 1),
  ...modelShapeSettings,
  ...routerSettings,
  "micro-batch": count("sequences per micro-batch", 1),
  "global-batch": count("sequences per step", 8),
  steps: whole("training steps in all (with --resume, counting the resumed ones); 0 with --eval-data: evaluate the model as initialized or resumed", 100),
  seed: seed(`seed of weights and data (and of the order of --data's windows), 0..${maxSeed}`, 1),
  "init-method-std": optionalReal(
    "Megatron's initialisation: every weight from N(0, F), the embedding and output layer too, the attention's output and the MLPs' down projections from N(0, F / sqrt(2 x --layers)) (DeepSeek-V3's 0.006; pleat's own by default: std 0.5 / sqrt(--hidden), half that for the down projections)",
  ),
  data: optionalText(
    "train on the token ids in FILE (nanoGPT's train.bin, Megatron's .bin: ids back to back, little-endian, no header): windows of seq + 1 tokens, every one once an epoch in an order shuffled by --seed; the synthetic language by default",
    "FILE",
  ),
  "data-blend": optionalText(
    "train on a blend of token files (as --data), each its weight's share of the sequences, in Megatron-Core's blending order (Megatron-LM's --train-data-path W PREFIX ...): \"W FILE W FILE ...\", weights positive, normalized; each file's windows shuffled by --seed on their own",
    "W FILE ...",
  ),
  "data-dtype": choice(TokenFile.dtypes, "uint16", "how --data, --data-blend and --eval-data store each id (uint16 for vocabularies up to 65,536)", "DTYPE"),
  "data-range": optionalText("read only ids START to END - 1 of --data (one split of a Megatron-LM dataset's documents: --split); all of them by default", "START:END"),
  "eval-data": optionalText(
    "held-out token file (as --data) to evaluate on: the language-model loss of --eval-batches global batches of it, forward passes only, after the last step and every --eval-every steps (a --resume at or past --steps: the checkpoint, nothing trained)",
    "FILE",
  ),
  "eval-data-range": optionalText("read only ids START to END - 1 of --eval-data (as --data-range)", "START:END"),
  "eval-every": optionalCount("evaluate on --eval-data every N steps (and after the last)"),
  "eval-batches": count("global batches of --eval-data an evaluation reads (the same sequences every time)", 4),
  ...documentSettings,
  ...routingSettings,
  dtype: choice(["float32", "float64"], "float32", "parameter and activation dtype", "DTYPE"),
  precision: choice(
    ["fp32", "bf16"],
    "fp32",
    "bf16: parameters and activations rounded to bfloat16 (held in float32 arrays: emulated storage, bf16 rounding) with fp32 master weights, gradients, optimizer state and reduction, the router and losses in fp32",
    "P",
  ),
  device: choice(
    ["cpu", "sim", "cuda"],
    "cpu",
    "where the ranks compute: the host; cuda, the process's GPU (fp32 weights, gradients and AdamW moments kept there, the optimizer and the distributed optimizer's collectives run there, on device arrays with --backend nccl); sim, a simulated device (host memory behind the device interface, for tests)",
    "DEVICE",
  ),
  recompute: choice(
    ["none", "selective", "full"],
    "none",
    "activation recompute in the backward (selective: the modules of --recompute-modules, by default the expert MLPs; full: whole layers)",
    "MODE",
  ),
  "recompute-modules": optionalText(
    `what --recompute selective recomputes, comma-separated (Megatron's --recompute-modules): ${RecomputeModules.all.join(", ")} (default ${RecomputeModules.defaults.join(",")}; moe_act: the experts' activation and fc2; moe: the whole MoE layer, its all-to-alls replayed)`,
    "LIST",
  ),
  lr: optionalReal(`peak learning rate, after the warm-up and before the cosine decay (default ${optimizer.lr} x min(1, ${Optimizer.referenceHidden} / --hidden))`),
  "min-lr": optionalReal(`the learning rate the decay ends at, 0..--lr (default a tenth of --lr's, given or default)`),
  "warmup-steps": optionalWhole("steps of linear warm-up to --lr, 0 for none (default a tenth of --steps, at least 1)"),
  "lr-decay-style": choice(
    LrSchedule.decayStyles,
    "cosine",
    "the learning rate's decay from --lr to --min-lr after the warm-up (Megatron's --lr-decay-style; wsd: warmup-stable-decay, constant until its final --lr-wsd-decay-steps)",
    "STYLE",
  ),
  "lr-decay-steps": optionalCount("the step the decay reaches --min-lr at, then held (default --steps; fix it to resume a run for more steps on the same schedule)"),
  "lr-wsd-decay-steps": optionalCount("wsd: the final steps of the decay that anneal to --min-lr (default a tenth of the steps after the warm-up)"),
  "lr-wsd-decay-style": optionalChoice(LrSchedule.wsdDecayStyles, "wsd: the anneal's shape (default exponential, as Megatron's)", "STYLE"),
  "weight-decay": optionalReal(`AdamW's decoupled weight decay, 0 or more; none on norms (default ${optimizer.weightDecay})`),
  "clip-grad": optionalReal(`clip gradients to this global L2 norm, 0: no clipping (default ${optimizer.clip})`),
  "adam-beta1": optionalReal(`AdamW's first-moment decay, in [0, 1) (default ${optimizer.beta1})`),
  "adam-beta2": optionalReal(`AdamW's second-moment decay, in [0, 1) (default ${optimizer.beta2})`),
  "adam-eps": optionalReal(`AdamW's epsilon, above 0 (default ${optimizer.eps})`),
  "distributed-optimizer": flag("shard the AdamW state over the data-parallel ranks (ZeRO-1: dense over dp x cp, experts over edp)"),
  "distributed-optimizer-instances": optionalCount(
    "hybrid sharding: the distributed optimizer's state sharded within N instances of consecutive data-parallel ranks and replicated across them (gradients reduce-scattered within, summed across; Megatron's --num-distributed-optimizer-instances); divides dp x cp and edp (default 1)",
  ),
  backend: choice(
    ChooseBackend.names,
    "local",
    "where ranks run (fibers of this thread, a worker thread each; -zero-copy reads shared tensors in place; mpi and nccl: a process each under mpirun, nccl moving the collectives' data with NCCL)",
    "NAME",
  ),
  workers: optionalCount("threads backends: worker threads for the ranks (default one per rank up to the cores; with fewer, each hosts a block of ranks)"),
  log: choice(["pretty", "json"], "pretty", "a progress bar and a summary, or JSON lines (start, each step, summary)", "FORMAT"),
  "log-level": choice(["trace", "debug", "info", "warn", "error", "silent"], "warn", "level of the per-rank logs (pino JSON on stderr)", "LEVEL"),
  save: optionalText("write checkpoints into DIR (a new path, an empty directory or one --save wrote): after the last step, and every --save-every", "DIR"),
  "save-every": optionalCount("also write a checkpoint every N steps (needs --save)"),
  keep: count("complete checkpoints --save keeps in DIR (the newest; older ones are removed)", 2),
  resume: optionalText("start from a checkpoint (saved under any mapping)", "DIR"),
  trace: optionalText("write a Chrome/Perfetto trace of every rank", "FILE"),
  "trace-steps": optionalText(
    "record only steps FIRST to LAST (counting from 1, as the progress does) in --trace: a long run's trace holds only them (Megatron's --profile-step-start/end); every step by default",
    "FIRST:LAST",
  ),
  definition: optionalText("train a model of your own: a module whose named export is a ModelDefinition (examples/08); default the built-in Mixtral-like model", "FILE#EXPORT"),
} as const

type Settings = typeof settings
type Setting = Settings[keyof Settings]
type Fields = { readonly [K in keyof Settings]: Settings[K]["schema"] }

/**
 * The name of a setting (a flag without its dashes, a key of the config file).
 * @category models
 */
export type Key = keyof Settings

const keys = Object.keys(settings) as Array<Key>

/**
 * The Schema of a decoded run configuration.
 * @category models
 */
export const RunConfig = Schema.Struct(Object.fromEntries(keys.map((k) => [k, settings[k].schema])) as unknown as Fields)

/**
 * A decoded run configuration.
 * @category models
 */
export type RunConfig = typeof RunConfig.Type

/**
 * The defaults, from `settings`.
 * @category configuration
 */
export const defaults: Readonly<Partial<Record<Key, number | string | boolean>>> = Object.fromEntries(
  keys.flatMap((k) => {
    const s: Setting = settings[k]
    return "default" in s ? [[k, s.default]] : []
  }),
)

/**
 * The command-line flags of the settings, their help showing each default.
 * @category configuration
 */
export const flags: Readonly<Record<Key, Flags.FlagSpec>> = Object.fromEntries(
  keys.map((k) => {
    const s: Setting = settings[k]
    const help = "default" in s ? `${s.help} (default ${s.default})` : s.help
    if (s.kind === "count") return [k, { kind: "int", placeholder: s.placeholder, help, min: s.min, max: s.max }]
    if (s.kind === "flag") return [k, { kind: "boolean", help }]
    return [k, { kind: "string", placeholder: s.placeholder, help }]
  }),
) as Record<Key, Flags.FlagSpec>

/**
 * Where a value came from.
 * @category models
 */
export type Source =
  | { readonly _tag: "default" }
  | { readonly _tag: "preset"; readonly preset: string }
  | { readonly _tag: "file"; readonly file: string }
  | { readonly _tag: "flag"; readonly as?: string }
  | { readonly _tag: "megatron" }

/**
 * A decoded configuration and where each of its values came from.
 * @category models
 */
export interface Decoded {
  readonly config: RunConfig
  readonly sources: Readonly<Partial<Record<Key, Source>>>
}

/**
 * The config file layer: its name and its parsed JSON object.
 * @category models
 */
export interface FileLayer {
  readonly file: string
  readonly values: Readonly<Record<string, unknown>>
}

const isKey = (k: string): k is Key => k in settings

/**
 * How a setting is named in a message, as the user wrote it.
 * @category mapping
 */
const nameOf = (key: Key, source: Source | undefined): string => {
  if (source?._tag === "file") return `"${key}" in ${source.file}`
  if (source?._tag === "preset") return `--${key} (of ${source.preset})`
  if (source?._tag === "megatron") return `--${key} (Megatron-LM's default)`
  return `--${source?._tag === "flag" && source.as !== undefined ? source.as : key}`
}

/**
 * The top-level keys a Schema issue points at (for messages that name the key).
 * @category mapping
 */
export const failingKeys = (issue: SchemaIssue.Issue, out: Set<string> = new Set()): Set<string> => {
  if (issue._tag === "Pointer") {
    const head = issue.path[0]
    if (head !== undefined) out.add(String(head))
    return out
  }
  if ("issues" in issue) for (const i of issue.issues) failingKeys(i, out)
  else if ("issue" in issue) failingKeys(issue.issue, out)
  return out
}

const problemOf = (key: Key, value: unknown, source: Source | undefined): ConfigError.ConfigError => {
  const s: Setting = settings[key]
  const name = nameOf(key, source)
  const where = source?._tag === "file" ? `set "${key}" in ${source.file} to` : `write --${key}`
  switch (s.kind) {
    case "count": {
      const problem = Flags.integerProblem(typeof value === "number" ? value : Number.NaN, s, where) ?? { reason: "is not an integer", fix: `${where} a whole number` }
      return ConfigError.make(name, value, problem.reason, problem.fix)
    }
    case "choice":
      return ConfigError.make(name, value, "is not allowed", `use one of ${s.options.join(", ")}`)
    case "text":
      return ConfigError.make(name, value, "is not a non-empty string", `${where} a ${s.placeholder}`)
    case "real":
      return ConfigError.make(name, value, "is not a finite number", `${where} a number such as 1.5`)
    case "flag":
      return ConfigError.make(name, value, "is not true or false", `${where} true or false`)
  }
}

const numberText = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i

/** The flags of real settings as numbers (a flag's value is text; a config file's a JSON number). */
const realsOf = (given: Readonly<Record<string, unknown>>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(given).map(([k, v]) => [k, isKey(k) && settings[k].kind === "real" && typeof v === "string" && numberText.test(v.trim()) ? Number(v) : v]))

/**
 * How the flags were given: each flag's name as typed where it was another name for it, and
 * the defaults that sit above pleat's (Megatron-LM's, from what was chosen) when there are any.
 * @category models
 */
export interface Given {
  readonly typed?: Readonly<Record<string, string>>
  readonly megatron?: (chosen: Readonly<Record<string, unknown>>) => Readonly<Record<string, unknown>>
}

/**
 * Decodes defaults < Megatron-LM's (Given.megatron) < preset < file < flags into a RunConfig; fails with
 * every problem at once, each naming the setting as the user wrote it. The preset is the `model`
 * of the file or the flags, scaled by their `scale` (an unknown name or a bad scale is reported
 * as any setting is).
 * @category constructors
 */
export const decode = (file: FileLayer | undefined, given: Readonly<Record<string, unknown>>, how: Given = {}): Result.Result<Decoded, ReadonlyArray<ConfigError.ConfigError>> => {
  const sources: Partial<Record<Key, Source>> = {}
  const chosen: Readonly<Record<string, unknown>> = { ...file?.values, ...given }
  const factor = chosen.scale ?? 1
  const preset = PresetSettings.isPresetName(chosen.model) && Schema.is(PositiveInt)(factor) ? PresetSettings.presetValues(chosen.model, factor) : {}
  const presetName = `--model ${String(chosen.model)}${factor === 1 ? "" : ` --scale ${String(factor)}`}`
  const above = how.megatron?.({ ...preset, ...file?.values, ...realsOf(given) }) ?? {}
  for (const k of keys) if (k in defaults) sources[k] = { _tag: "default" }
  for (const k of Object.keys(above)) if (isKey(k)) sources[k] = { _tag: "megatron" }
  for (const k of Object.keys(preset)) if (isKey(k)) sources[k] = { _tag: "preset", preset: presetName }
  for (const k of Object.keys(file?.values ?? {})) if (isKey(k) && file !== undefined) sources[k] = { _tag: "file", file: file.file }
  for (const k of Object.keys(given)) if (isKey(k)) sources[k] = { _tag: "flag", ...(how.typed?.[k] === undefined ? {} : { as: how.typed[k] }) }
  const input: Record<string, unknown> = { ...defaults, ...above, ...preset, ...file?.values, ...realsOf(given) }
  const decoded = Schema.decodeUnknownResult(RunConfig, { errors: "all", onExcessProperty: "error" })(input)
  if (Result.isSuccess(decoded)) {
    if (decoded.success.model === undefined && decoded.success.scale !== 1) {
      const fix = `add --model NAME (one of ${ModelPresets.names.join(", ")}), or drop --scale`
      return Result.fail([ConfigError.make(nameOf("scale", sources.scale), decoded.success.scale, "has no model preset to shrink", fix)])
    }
    return Result.succeed({ config: decoded.success, sources })
  }
  const problems = [...failingKeys(decoded.failure.issue)].map((k) => {
    if (isKey(k)) return problemOf(k, input[k], sources[k])
    const near = Flags.closest(k, keys)
    const fix = near === undefined ? `use keys among ${keys.join(", ")}` : `did you mean "${near}"?`
    return ConfigError.make("--config", file?.file, `has the unknown key "${k}"`, fix)
  })
  return Result.fail(problems)
}

/** The settings whose flag is not their ModelConfig field's name in kebab case. */
const flagOfField: Readonly<Record<string, string>> = { linearBias: "add-bias-linear", mtpLayers: "mtp-num-layers", mtpLossScale: "mtp-loss-scaling-factor" }

const kebab = (field: string): string => flagOfField[field] ?? field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

const mentions = (text: string, key: string): boolean => new RegExp(`(?<![A-Za-z0-9_]|[A-Za-z0-9_]-)${key.replace(/[-]/g, "\\-")}(?![A-Za-z0-9_-])`).test(text)

const parallelDegrees: ReadonlyArray<Key> = ["tp", "cp", "pp", "ep", "etp", "vpp"]

/**
 * Rewrites a ConfigError of a cross-field check (ParallelConfig, ModelConfig, Checkpoint) for
 * the command line: its field named as the user wrote it, and the defaults it involves named
 * (a user who never typed `--tp` must learn that tp was 2).
 * @category mapping
 */
export const explain = (error: ConfigError.ConfigError, decoded: Decoded): ConfigError.ConfigError => {
  const key = kebab(error.field)
  const failing = isKey(key) ? key : undefined
  const field = failing === undefined ? error.field : nameOf(failing, decoded.sources[failing])
  const said = `${error.reason} ${error.fix}`
  const involved = keys.filter((k) => {
    if (decoded.sources[k]?._tag !== "default") return false
    if (k === failing || mentions(said, k)) return true
    // How world splits depends on every degree, named in the message or not.
    return failing === "world" && parallelDegrees.includes(k) && (defaults[k] ?? 1) !== 1
  })
  const note =
    involved.length === 0 ? "" : `; defaults in effect (not given): ${involved.map((k) => `--${k} ${String(defaults[k])}`).join(", ")}; pass a flag to choose another value`
  return ConfigError.make(field, error.value, error.reason, `${error.fix}${note}`)
}
