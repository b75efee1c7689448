/**
 * HfDirectory: writing a Hugging Face model directory from a checkpoint, crash-safe.
 *
 *   OUT/config.json                         the architecture's settings (HfExportConfig.configText)
 *   OUT/model.safetensors                   the weights, when they fit in one file
 *   OUT/model-0000i-of-0000n.safetensors    or in n files of at most --max-shard-size each,
 *   OUT/model.safetensors.index.json        with {"metadata": {"total_size"}, "weight_map"}
 * Every file is written into a sibling directory named .OUT.partial-PID and flushed; that
 * directory is flushed and renamed to OUT in one step (OUT must not exist, or be an empty
 * directory), then OUT's parent is flushed. A crash leaves OUT absent (or as it was) and the
 * partial directory, never an OUT with some of its files; a failed export removes its partial
 * directory.
 */
import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs"
import path from "node:path"
import * as ConfigError from "../errors/ConfigError.js"
import * as Checkpoint from "./Checkpoint.js"
import * as Durable from "./CheckpointDurable.js"
import * as HfExport from "./HfExport.js"
import * as HfExportConfig from "./HfExportConfig.js"
import type * as HfLayout from "./HfLayout.js"
import * as Safetensors from "./Safetensors.js"

/**
 * What an export asks for.
 * @category models
 */
export interface Request {
  /** A checkpoint directory (as --resume takes). */
  readonly checkpoint: string
  /** The model directory to create. */
  readonly out: string
  readonly format: HfLayout.Format | "auto"
  readonly dtype: HfExport.WeightDtype
  /** The most bytes of weights in one safetensors file. */
  readonly maxShardBytes: number
}

/**
 * What an export wrote.
 * @category models
 */
export interface Written {
  readonly out: string
  readonly format: HfLayout.Format
  readonly dtype: HfExport.WeightDtype
  /** The checkpoint's step. */
  readonly step: number
  readonly tensors: number
  /** Bytes of weights (the tensors' data). */
  readonly weightBytes: number
  /** The files written, by name. */
  readonly files: ReadonlyArray<string>
}

/**
 * A ConfigError on `--out` when it cannot become the new directory of an export's model or an
 * import's checkpoint (it exists and is not an empty directory); undefined when it can.
 * @category guards
 */
export const outProblem = (out: string, what: "model" | "checkpoint"): ConfigError.ConfigError | undefined => {
  if (!existsSync(out)) return undefined
  if (!statSync(out).isDirectory()) return ConfigError.make("--out", out, "is a file", `pass a new path or an empty directory for the ${what}`)
  if (readdirSync(out).length > 0)
    return ConfigError.make(
      "--out",
      out,
      "is a directory that is not empty",
      `pass a new path or an empty directory for the ${what} (an ${what === "model" ? "export" : "import"} never writes over files)`,
    )
  return undefined
}

/** `read`, with a checkpoint's ConfigError (on `resume`, as training reports it) on `--checkpoint`. */
const asCheckpointFlag = <A>(read: () => A): A => {
  try {
    return read()
  } catch (error) {
    if (ConfigError.isConfigError(error) && error.field === "resume") throw ConfigError.make("--checkpoint", error.value, error.reason, error.fix)
    throw error
  }
}

const fileName = (i: number, n: number): string => (n === 1 ? "model.safetensors" : `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`)

/**
 * Exports the checkpoint `request.checkpoint` into the model directory `request.out`; throws a
 * ConfigError (on `--checkpoint`, `--format` or `--out`) before writing anything when it cannot.
 * @category constructors
 */
export const write = (request: Request): Written => {
  const problem = outProblem(request.out, "model")
  if (problem !== undefined) throw problem
  // Each parameter read from the checkpoint as its tensors are written: an export holds one at a time.
  const checkpoint = asCheckpointFlag(() => Checkpoint.stored(request.checkpoint))
  const { manifest } = checkpoint
  const format = HfExport.choose(manifest.model, request.format, request.checkpoint)
  const params = { shapes: checkpoint.shapes, value: (name: string) => asCheckpointFlag(() => checkpoint.value(name)) }
  const entries = HfExport.tensors(manifest.model, format, params, request.dtype, request.checkpoint, manifest.expertBias)
  const groups = HfExport.shards(entries, request.maxShardBytes)
  const out = path.resolve(request.out)
  const partial = path.join(path.dirname(out), `.${path.basename(out)}.partial-${process.pid}`)
  const metadata = { format: "pt", pleat_checkpoint: path.resolve(request.checkpoint), pleat_step: String(manifest.step) }
  const files: Array<string> = []
  try {
    rmSync(partial, { recursive: true, force: true })
    Durable.makeDirectory(partial)
    const weightMap: Record<string, string> = {}
    groups.forEach((group, i) => {
      const name = fileName(i, groups.length)
      Safetensors.write(path.join(partial, name), group, metadata)
      for (const e of group) weightMap[e.name] = name
      files.push(name)
    })
    const weightBytes = entries.reduce((n, e) => n + Safetensors.byteLength(e), 0)
    if (groups.length > 1) {
      Durable.writeFile(path.join(partial, "model.safetensors.index.json"), `${JSON.stringify({ metadata: { total_size: weightBytes }, weight_map: weightMap }, null, 2)}\n`)
      files.push("model.safetensors.index.json")
    }
    Durable.writeFile(path.join(partial, "config.json"), HfExportConfig.configText(manifest.model, format, request.dtype))
    files.push("config.json")
    Durable.syncDirectory(partial)
    // An empty OUT is replaced by the rename (rename(2) takes an empty directory's place).
    renameSync(partial, out)
    Durable.syncDirectory(path.dirname(out))
    return { out, format, dtype: request.dtype, step: manifest.step, tensors: entries.length, weightBytes, files }
  } catch (error) {
    rmSync(partial, { recursive: true, force: true })
    throw error
  }
}
