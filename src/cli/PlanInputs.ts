/**
 * PlanInputs: `pleat plan`'s model and cluster arguments, each a preset name or a JSON file,
 * decoded into the planner's types; every problem a ConfigError naming the flag, the value
 * and the fix.
 */
import { basename } from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as ConfigError from "../errors/ConfigError.js"
import * as RoutingStats from "../moe/RoutingStats.js"
import * as Cluster from "../plan/Cluster.js"
import * as ExpertLoad from "../plan/ExpertLoad.js"
import * as ModelFile from "../plan/ModelFile.js"
import type * as ModelConfig from "../train/ModelConfig.js"
import * as ModelPresets from "../train/ModelPresets.js"
import * as RoutingFiles from "../train/RoutingFiles.js"
import * as JsonFile from "./JsonFile.js"
import * as RunConfig from "./RunConfig.js"

/** Whether an argument names a file rather than a preset. */
const looksLikeFile = (value: string): boolean => value.endsWith(".json") || value.includes("/")

/**
 * The file a preset-or-file argument names; undefined for a preset.
 * @category mapping
 */
export const fileOf = (value: string | undefined): string | undefined => (value !== undefined && looksLikeFile(value) ? value : undefined)

/** Decodes `values` read from `file` with `schema`, naming the first bad or unknown key. */
const decode = <S extends Schema.Top>(schema: S, flag: string, file: string, values: Record<string, unknown>, keys: ReadonlyArray<string>): S["Type"] => {
  const decoded = Schema.decodeUnknownResult(schema as unknown as Schema.Codec<S["Type"], unknown>, { errors: "all", onExcessProperty: "error" })(values)
  if (Result.isSuccess(decoded)) return decoded.success
  const key = [...RunConfig.failingKeys(decoded.failure.issue)][0] ?? "?"
  if (!keys.includes(key)) throw ConfigError.make(flag, file, `has the unknown key "${key}"`, `use keys among ${keys.join(", ")}`)
  const value = values[key]
  throw ConfigError.make(
    flag,
    file,
    value === undefined ? `lacks the key "${key}"` : `has "${key}": ${JSON.stringify(value)}, which is not allowed`,
    `set "${key}" to ${key.startsWith("untie") || key.endsWith("Gate") ? "true or false" : key === "name" ? "a string" : "a positive number (a whole number for counts)"}`,
  )
}

const nameOfFile = (file: string): string => basename(file).replace(/\.json$/, "")

/** What a preset-or-file argument is: its flag, its kind in words, its presets, its file's Schema. */
interface Source<S extends Schema.Top, A> {
  readonly flag: string
  readonly kind: string
  readonly presets: ReadonlyArray<string>
  readonly preset: (name: string) => A
  readonly schema: S & { readonly fields: Readonly<Record<string, unknown>> }
  readonly example: string
  readonly fromFile: (decoded: S["Type"], name: string) => A
}

/** A preset by name, or the JSON file the argument names, decoded. */
const presetOrFile = <S extends Schema.Top, A>(source: Source<S, A>, value: string): A => {
  if (!looksLikeFile(value)) {
    if (source.presets.includes(value)) return source.preset(value)
    throw ConfigError.make(
      source.flag,
      value,
      `is neither a ${source.kind} preset nor a .json file`,
      `use one of ${source.presets.join(", ")}, or the path of a ${source.kind} JSON file`,
    )
  }
  const values = JsonFile.readObject(source.flag, value, `a ${source.kind} as one JSON object, e.g. ${source.example}`)
  if (ConfigError.isConfigError(values)) throw values
  return source.fromFile(decode(source.schema, source.flag, value, values, Object.keys(source.schema.fields)), nameOfFile(value))
}

/**
 * The model a `--model` argument names: a preset (at full size, with its router options) or a
 * model file (ModelFile).
 * @category constructors
 */
export const model = (value: string): { readonly name: string; readonly model: ModelConfig.ModelConfig } =>
  presetOrFile(
    {
      flag: "--model",
      kind: "model",
      presets: ModelPresets.names,
      preset: (name) => ({ name, model: ModelPresets.model(name as ModelPresets.Name, 1) }),
      schema: ModelFile.ModelFile,
      example: '{"hidden": 4096, "layers": 32, "heads": 32, "experts": 8, "topk": 2, "moeFfn": 14336, "vocab": 32000}',
      fromFile: ModelFile.toModel,
    },
    value,
  )

/**
 * The cluster a `--cluster` argument names: a preset or a cluster file (Cluster.ClusterFile).
 * @category constructors
 */
export const cluster = (value: string): Cluster.Cluster =>
  presetOrFile(
    {
      flag: "--cluster",
      kind: "cluster",
      presets: Cluster.names,
      preset: (name) => Cluster.presets[name] as Cluster.Cluster,
      schema: Cluster.ClusterFile,
      example: '{"gpusPerNode": 8, "memoryGB": 80, "peakTflops": 989.5, "nvlinkGBps": 900, "nicsPerNode": 8, "nicGbps": 400}',
      fromFile: Cluster.fromFile,
    },
    value,
  )

/**
 * The expert load of a `--routing` recording (ExpertLoad) for `model`: its tokens per expert,
 * step by step and layer by layer. Its experts must be the model's (fewer only where the
 * recording has no routing.json and the last experts got no token).
 * @category constructors
 */
export const expertLoad = (dir: string, model: ModelConfig.ModelConfig): ((ep: number) => number) => {
  const { manifest, steps, inferred } = RoutingFiles.recording(dir, "--routing")
  const experts = model.experts
  if (inferred ? manifest.numExperts > experts : manifest.numExperts !== experts) {
    throw ConfigError.make("--routing", dir, `is a routing of ${manifest.numExperts} experts, and --model has ${experts}`, "record the routing of a model with as many experts")
  }
  const tokens = manifest.globalBatch * manifest.seq
  const counts = steps.map((step) => {
    const routing = RoutingFiles.readStep(dir, step, manifest, "--routing")
    return manifest.layers.map((_, l) => RoutingStats.tokensPerExpert(routing.experts, l, tokens, manifest.topk, experts))
  })
  return ExpertLoad.of(counts)
}
