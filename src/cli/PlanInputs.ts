/**
 * PlanInputs: `pleat plan`'s model and cluster arguments, each a preset name or a JSON file,
 * decoded into the planner's types; every problem a ConfigError naming the flag, the value
 * and the fix.
 */
import { basename } from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as ConfigError from "../errors/ConfigError.js"
import * as Cluster from "../plan/Cluster.js"
import * as ModelFile from "../plan/ModelFile.js"
import type * as ModelConfig from "../train/ModelConfig.js"
import * as ModelPresets from "../train/ModelPresets.js"
import * as JsonFile from "./JsonFile.js"
import * as RunConfig from "./RunConfig.js"

/** Whether an argument names a file rather than a preset. */
const looksLikeFile = (value: string): boolean => value.endsWith(".json") || value.includes("/")

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

/**
 * The model a `--model` argument names: a preset (at full size, with its router options) or a
 * model file (ModelFile).
 * @category constructors
 */
export const model = (value: string): { readonly name: string; readonly model: ModelConfig.ModelConfig } => {
  if (!looksLikeFile(value)) {
    if ((ModelPresets.names as ReadonlyArray<string>).includes(value)) return { name: value, model: ModelPresets.model(value as ModelPresets.Name, 1) }
    throw ConfigError.make("--model", value, "is neither a model preset nor a .json file", `use one of ${ModelPresets.names.join(", ")}, or the path of a model JSON file`)
  }
  const values = JsonFile.readObject(
    "--model",
    value,
    'a model as one JSON object, e.g. {"hidden": 4096, "layers": 32, "heads": 32, "experts": 8, "topk": 2, "moeFfn": 14336, "vocab": 32000}',
  )
  if (ConfigError.isConfigError(values)) throw values
  return ModelFile.toModel(decode(ModelFile.ModelFile, "--model", value, values, Object.keys(ModelFile.ModelFile.fields)), nameOfFile(value))
}

/**
 * The cluster a `--cluster` argument names: a preset or a cluster file (Cluster.ClusterFile).
 * @category constructors
 */
export const cluster = (value: string): Cluster.Cluster => {
  if (!looksLikeFile(value)) {
    const preset = Cluster.presets[value]
    if (preset !== undefined) return preset
    throw ConfigError.make("--cluster", value, "is neither a cluster preset nor a .json file", `use one of ${Cluster.names.join(", ")}, or the path of a cluster JSON file`)
  }
  const values = JsonFile.readObject(
    "--cluster",
    value,
    'a cluster as one JSON object, e.g. {"gpusPerNode": 8, "memoryGB": 80, "peakTflops": 989.5, "nvlinkGBps": 900, "nicsPerNode": 8, "nicGbps": 400}',
  )
  if (ConfigError.isConfigError(values)) throw values
  return Cluster.fromFile(decode(Cluster.ClusterFile, "--cluster", value, values, Object.keys(Cluster.ClusterFile.fields)), nameOfFile(value))
}
