/**
 * TrainOptions: the flags shared by `pleat train` and `pleat verify`, a JSON config file with
 * the same keys, the defaults, and the checks that run before any work starts.
 *
 * Precedence: defaults < --config FILE.json < flags. The default job is a small Mixtral-like
 * model (4 layers, 8 experts, top-2) on 8 local ranks folded as attention tp 2 x cp 2 x pp 2
 * and MoE ep 2 x edp 2 (etp 1): pipeline, tensor, context, expert and (expert) data
 * parallelism at once.
 */
import { readFileSync } from "node:fs"
import * as Result from "effect/Result"
import * as ConfigError from "../mapping/ConfigError.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as ModelConfig from "../train/ModelConfig.js"
import * as Optimizer from "../train/Optimizer.js"
import type * as RankTrainer from "../train/RankTrainer.js"
import * as Flags from "./Flags.js"

const int = (help: string, placeholder = "N"): Flags.FlagSpec => ({ kind: "int", placeholder, help })

/**
 * Flags of the training commands.
 * @category configuration
 */
export const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  config: { kind: "string", placeholder: "FILE", help: "a JSON file with any of these settings (flags override it)" },
  world: int("ranks (default 8)"),
  tp: int("attention tensor parallel (default 2)"),
  cp: int("context parallel (default 2)"),
  pp: int("pipeline parallel (default 2)"),
  vpp: int("virtual pipeline stages per rank (interleaved 1F1B)"),
  ep: int("expert parallel (default 2)"),
  etp: int("expert tensor parallel (default 1)"),
  order: { kind: "string", placeholder: "O", help: "axis order (default tp-cp-ep-dp-pp)" },
  layers: int("transformer layers (default 4)"),
  hidden: int("hidden size (default 32)"),
  heads: int("attention heads (default 4)"),
  "kv-heads": int("key/value heads (default 2)"),
  vocab: int("vocabulary (default 32)"),
  experts: int("experts (default 8)"),
  topk: int("experts per token (default 2)"),
  seq: int("sequence length (default 16)"),
  "micro-batch": int("sequences per micro-batch (default 1)"),
  "global-batch": int("sequences per step (default 8)"),
  steps: int("training steps in all (default 100; with --resume, the total including the resumed ones)"),
  seed: int("seed of weights and data (default 1)"),
  dtype: { kind: "string", placeholder: "float32|float64", help: "parameter and activation dtype (default float32)" },
  backend: { kind: "string", placeholder: "local|threads", help: "where ranks run (default local)" },
  log: { kind: "string", placeholder: "pretty|json", help: "progress bar and summary, or one JSON line per step (default pretty)" },
  save: { kind: "string", placeholder: "DIR", help: "write a checkpoint after the last step" },
  resume: { kind: "string", placeholder: "DIR", help: "start from a checkpoint (saved under any mapping)" },
  trace: { kind: "string", placeholder: "FILE", help: "write a Chrome/Perfetto trace of every rank" },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * Everything a training command needs, checked.
 * @category models
 */
export interface Resolved {
  readonly setup: RankTrainer.TrainSetup
  readonly steps: number
  readonly backend: "local" | "threads"
  readonly log: "pretty" | "json"
  readonly save: string | undefined
  readonly resume: string | undefined
  readonly trace: string | undefined
}

const fromFile = (file: string): Record<string, unknown> => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch {
    throw ConfigError.make("config", file, "cannot be read", "pass the path of a readable JSON file")
  }
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object")
    for (const key of Object.keys(parsed)) {
      if (!(key in flags) || key === "config" || key === "help") throw ConfigError.make("config", file, `has the unknown key "${key}"`, `use keys among ${Object.keys(flags).filter((k) => k !== "config" && k !== "help").join(", ")}`)
    }
    return parsed as Record<string, unknown>
  } catch (error) {
    if (ConfigError.isConfigError(error)) throw error
    throw ConfigError.make("config", file, "is not a JSON object", "write the settings as one JSON object, e.g. {\"steps\": 10}")
  }
}

const choice = <A extends string>(field: string, value: unknown, options: ReadonlyArray<A>, fallback: A): A => {
  if (value === undefined) return fallback
  if (typeof value === "string" && (options as ReadonlyArray<string>).includes(value)) return value as A
  throw ConfigError.make(field, value, "is not allowed", `use one of ${options.join(", ")}`)
}

/**
 * Parses the flags (and config file) into a checked job; throws a ConfigError naming the field.
 * @category constructors
 */
export const resolve = (argv: ReadonlyArray<string>): Resolved | "help" => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) return "help"
  const file = Flags.string(f, "config")
  const merged: Record<string, unknown> = { ...(file === undefined ? {} : fromFile(file)), ...Object.fromEntries(Object.entries(f).filter(([k]) => k !== "config")) }
  const num = (key: string, fallback: number): number => {
    const v = merged[key]
    if (v === undefined) return fallback
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw ConfigError.make(key, v, "is not a positive integer", `set ${key} to 1, 2, 3, ...`)
    return v
  }
  const optional = (key: string): number | undefined => (merged[key] === undefined ? undefined : num(key, 1))
  const str = (key: string): string | undefined => {
    const v = merged[key]
    if (v === undefined) return undefined
    if (typeof v !== "string") throw ConfigError.make(key, v, "is not a string", `set ${key} to a string`)
    return v
  }
  const parallel = ParallelConfig.validate({
    world: num("world", 8),
    tp: num("tp", 2),
    cp: num("cp", 2),
    pp: num("pp", 2),
    ep: num("ep", 2),
    etp: num("etp", 1),
    vpp: optional("vpp"),
    order: str("order"),
  })
  if (Result.isFailure(parallel)) throw parallel.failure
  const d = ModelConfig.small
  const model: ModelConfig.ModelConfig = {
    ...d,
    layers: num("layers", d.layers),
    hidden: num("hidden", d.hidden),
    heads: num("heads", d.heads),
    kvHeads: num("kv-heads", d.kvHeads),
    vocab: num("vocab", d.vocab),
    experts: num("experts", d.experts),
    topk: num("topk", d.topk),
    seq: num("seq", d.seq),
  }
  const batch = { microBatch: num("micro-batch", 1), globalBatch: num("global-batch", 8) }
  ModelConfig.check(model, batch, parallel.success)
  const steps = num("steps", 100)
  const dtype = choice("dtype", merged.dtype, ["float32", "float64"] as const, "float32")
  const backend = choice("backend", merged.backend, ["local", "threads"] as const, "local")
  if (backend === "threads" && merged.trace !== undefined) {
    throw ConfigError.make("trace", merged.trace, "is not recorded on the threads backend (spans stay in the workers)", "trace with --backend local")
  }
  return {
    setup: { parallel: parallel.success, model, batch, seed: num("seed", 1), dtype, optimizer: Optimizer.defaults(steps), auxLossCoeff: 0.01 },
    steps,
    backend,
    log: choice("log", merged.log, ["pretty", "json"] as const, "pretty"),
    save: str("save"),
    resume: str("resume"),
    trace: str("trace"),
  }
}

/**
 * Training FLOPs of one step of the model (3x the forward: matmuls, attention, output).
 * @category mapping
 */
export const flopsPerStep = (m: ModelConfig.ModelConfig, globalBatch: number): number => {
  const d = ModelConfig.headDim(m)
  let perToken = 2 * m.hidden * m.vocab // output layer
  for (let l = 0; l < m.layers; l++) {
    perToken += 2 * m.hidden * (m.heads * d + 2 * m.kvHeads * d) + 2 * m.heads * d * m.hidden // projections
    perToken += 2 * m.heads * d * m.seq // causal attention: q.k and p.v over ~seq/2 keys each
    perToken += ModelConfig.isMoe(m, l) ? 2 * m.hidden * m.experts + m.topk * 6 * m.hidden * m.moeFfn : 6 * m.hidden * m.ffn
  }
  return 3 * perToken * globalBatch * m.seq
}
