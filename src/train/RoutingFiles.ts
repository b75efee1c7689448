/**
 * RoutingFiles: a run's routing on disk, for `--routing-record DIR` and `--routing-replay DIR`
 * (Megatron-Core's routing replay, semantics.md 2.1.10: RECORD keeps the top-k the router chose,
 * REPLAY_FORWARD routes by stored indices, the probs then come from the scores at them).
 * Megatron keeps the indices of one forward per router in memory; pleat keys them by the data,
 * so a recording replays under any mapping, backend and pipeline schedule.
 *
 * The directory:
 *   routing.json         {"format": "pleat-routing", "version": 1, "numExperts": E, "topk": K,
 *                        "seq": S, "globalBatch": B, "layers": [...]}: the model's MoE layers in
 *                        order (multi-token prediction layers numbered after the model's).
 *   step-00000001.npy    int32 [layers, B * S, K] in NumPy's .npy format (Npy): step n's routing
 *                        (counting from 1, as the progress and the checkpoints do). Row j * S + p
 *                        is position p of the step's sequence j in the data stream's order (the
 *                        data-parallel ranks' micro-batches one after another); its K experts
 *                        in the order the router chose them (best first), before any dropping.
 * Recording writes routing.json first, then each step's file once every rank has routed it,
 * each written whole, flushed and published by one rename. Replay reads routing.json when it is
 * there (Python may write only the step files) and checks every step file the run will read
 * before any rank starts: its shape, every expert in [0, E), no expert twice for one token.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as ConfigError from "../errors/ConfigError.js"
import * as ModelContext from "../model/ModelContext.js"
import * as Durable from "./CheckpointDurable.js"
import type * as ModelConfig from "./ModelConfig.js"
import * as Npy from "./Npy.js"

/**
 * What a routing directory holds, as routing.json says.
 * @category models
 */
export interface Manifest {
  readonly format: "pleat-routing"
  readonly version: 1
  readonly numExperts: number
  readonly topk: number
  readonly seq: number
  readonly globalBatch: number
  readonly layers: ReadonlyArray<number>
}

/**
 * One step's routing: experts [layers.length, tokens, topk] of every MoE layer and token.
 * @category models
 */
export interface StepRouting {
  readonly layers: ReadonlyArray<number>
  readonly tokens: number
  readonly topk: number
  readonly experts: Int32Array
}

/**
 * The routing of one MoE layer for some of a step's tokens: their places in the step (j * S + p)
 * and their experts, [places.length * K].
 * @category models
 */
export interface Entry {
  readonly layer: number
  readonly places: Int32Array
  readonly experts: Int32Array
}

/**
 * The model's routers in order: its MoE layers, then its multi-token prediction layers' MoE layers.
 * @category mapping
 */
const routerLayers = (model: ModelConfig.ModelConfig): Array<number> => {
  const all = model.layers + ModelContext.mtpLayersOf(model)
  return Array.from({ length: all }, (_, l) => l).filter((l) => ModelContext.isMoe(model, l))
}

/**
 * The manifest of a model and global batch.
 * @category constructors
 */
export const manifestOf = (model: ModelConfig.ModelConfig, globalBatch: number): Manifest => ({
  format: "pleat-routing",
  version: 1,
  numExperts: model.experts,
  topk: model.topk,
  seq: model.seq,
  globalBatch,
  layers: routerLayers(model),
})

/**
 * The file of step n (counting from 1).
 * @category mapping
 */
const stepFile = (dir: string, step: number): string => path.join(dir, `step-${String(step).padStart(8, "0")}.npy`)

const manifestFile = (dir: string): string => path.join(dir, "routing.json")

/** Why `e` happened, in a few words (an fs error's code and message). */
const why = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Makes `dir` ready to record into: created if missing, routing.json written. A directory with
 * step files of another model or batch is refused (their routing would not be this run's).
 * @category constructors
 */
export const prepareRecord = (dir: string, manifest: Manifest, field = "routing-record"): void => {
  if (manifest.layers.length === 0)
    throw ConfigError.make(field, dir, "records the routing of MoE layers, and the model has none", "give the model MoE layers (--experts) or drop the flag")
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw ConfigError.make(field, dir, "is a file, not a directory", "name a directory (it is created when missing)")
  if (fs.existsSync(manifestFile(dir))) {
    const held = readManifest(dir, field)
    const differs = differenceFrom(held, manifest)
    if (differs !== undefined) throw ConfigError.make(field, dir, `holds the routing of another run (${differs})`, "record into a new directory")
  }
  try {
    Durable.makeDirectory(dir)
    Durable.replaceFile(manifestFile(dir), `${JSON.stringify(manifest, null, 2)}\n`)
  } catch (e) {
    throw ConfigError.make(field, dir, `cannot be written (${why(e)})`, "record into a directory this user can write")
  }
}

/**
 * Writes step n's routing file (whole, flushed, one rename).
 * @category constructors
 */
const writeStep = (dir: string, step: number, routing: StepRouting): void => {
  Durable.replaceFile(stepFile(dir, step), Npy.encodeInt32(routing.experts, [routing.layers.length, routing.tokens, routing.topk]))
}

/** The manifest in `dir` (it must be there), checked as a manifest. */
const readManifest = (dir: string, field: string): Manifest => {
  const file = manifestFile(dir)
  let value: unknown
  try {
    value = JSON.parse(fs.readFileSync(file, "utf8"))
  } catch (e) {
    throw ConfigError.make(field, file, `cannot be read as JSON (${why(e)})`, "write routing.json as --routing-record does, or remove it")
  }
  const m = value as Partial<Record<keyof Manifest, unknown>>
  const counts = ["numExperts", "topk", "seq", "globalBatch"] as const
  const bad =
    typeof value !== "object" || value === null || m.format !== "pleat-routing" || m.version !== 1
      ? "format and version"
      : (counts.find((k) => !Number.isSafeInteger(m[k]) || (m[k] as number) < 1) ??
        (!Array.isArray(m.layers) || !m.layers.every((l) => Number.isSafeInteger(l) && l >= 0) ? "layers" : undefined))
  if (bad !== undefined) {
    throw ConfigError.make(
      field,
      file,
      `is not a routing manifest (its ${bad})`,
      'write {"format": "pleat-routing", "version": 1, "numExperts", "topk", "seq", "globalBatch", "layers"}',
    )
  }
  return value as Manifest
}

/** The first way `held` differs from `wanted` ("numExperts 8, this run 16"), if any. */
const differenceFrom = (held: Manifest, wanted: Manifest): string | undefined => {
  for (const key of ["numExperts", "topk", "seq", "globalBatch"] as const) {
    if (held[key] !== wanted[key]) return `${key} ${held[key]}, this run ${wanted[key]}`
  }
  if (held.layers.join(",") !== wanted.layers.join(",")) return `MoE layers ${held.layers.join(",")}, this run ${wanted.layers.join(",")}`
  return undefined
}

/**
 * Step n's routing from `dir`, checked against `manifest` (this run's): shape, expert range,
 * no expert twice for a token.
 * @category constructors
 */
export const readStep = (dir: string, step: number, manifest: Manifest, field = "routing-replay"): StepRouting => {
  const file = stepFile(dir, step)
  let bytes: Uint8Array
  try {
    bytes = fs.readFileSync(file)
  } catch (e) {
    throw ConfigError.make(field, file, `cannot be read for step ${step} (${why(e)})`, `record step ${step} too (--routing-record), or train fewer steps`)
  }
  const { shape, data } = Npy.decodeIntegers(bytes, `${field} ${file}`)
  const layers = manifest.layers.length
  const tokens = manifest.globalBatch * manifest.seq
  const k = manifest.topk
  if (shape.length !== 3 || shape[0] !== layers || shape[1] !== tokens || shape[2] !== k) {
    throw ConfigError.make(
      `${field} ${file}`,
      `shape (${shape.join(", ")})`,
      `is not [MoE layers ${layers}, global batch x seq ${tokens}, topk ${k}]`,
      "record with this run's model and --global-batch, or write that shape",
    )
  }
  const e = manifest.numExperts
  const experts = new Int32Array(data.length)
  const seen = new Int32Array(e).fill(-1)
  // The file and index of an entry, for its refusal: [layer, token, j].
  const at = (row: number, j: number) => `${field} ${file}[${Math.floor(row / tokens)}, ${row % tokens}, ${j}]`
  for (let row = 0; row < layers * tokens; row++) {
    for (let j = 0; j < k; j++) {
      const value = data[row * k + j] as number
      if (value < 0 || value >= e) throw ConfigError.make(at(row, j), value, `is not an expert of [0, ${e})`, "give expert indices below --experts")
      if (seen[value] === row) throw ConfigError.make(at(row, j), value, "routes the token to this expert twice", `give each token ${k} different experts`)
      seen[value] = row
      experts[row * k + j] = value
    }
  }
  return { layers: manifest.layers, tokens, topk: k, experts }
}

/**
 * Checks a replay directory against this run before any rank starts: its routing.json (when
 * there) against `manifest`, and every step file of steps first+1..steps.
 * @category guards
 */
export const checkReplay = (dir: string, manifest: Manifest, first: number, steps: number, field = "routing-replay"): void => {
  if (manifest.layers.length === 0)
    throw ConfigError.make(field, dir, "replays the routing of MoE layers, and the model has none", "give the model MoE layers (--experts) or drop the flag")
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw ConfigError.make(field, dir, "is not a directory", "name a directory --routing-record wrote")
  if (fs.existsSync(manifestFile(dir))) {
    const differs = differenceFrom(readManifest(dir, field), manifest)
    if (differs !== undefined) throw ConfigError.make(field, dir, `holds the routing of another model or batch (${differs})`, "replay a recording of this model and --global-batch")
  }
  for (let step = first + 1; step <= steps; step++) readStep(dir, step, manifest, field)
}

/**
 * Sets `entries` (one rank's, or every rank's) into `into` (experts, -1 where not yet set). A
 * place set twice must get the same experts (ranks that route the same rows agree).
 * @category mutations
 */
const fill = (into: StepRouting, entries: Iterable<Entry>): void => {
  const k = into.topk
  for (const entry of entries) {
    const l = into.layers.indexOf(entry.layer)
    if (l < 0) throw new Error(`RoutingFiles.fill: layer ${entry.layer} is not one of the routers ${into.layers.join(",")}`)
    for (let r = 0; r < entry.places.length; r++) {
      const base = (l * into.tokens + (entry.places[r] as number)) * k
      for (let j = 0; j < k; j++) {
        const value = entry.experts[r * k + j] as number
        const held = into.experts[base + j] as number
        if (held !== -1 && held !== value) {
          throw new Error(`RoutingFiles.fill: layer ${entry.layer}, token ${entry.places[r]}: two ranks routed it differently (${held} and ${value})`)
        }
        into.experts[base + j] = value
      }
    }
  }
}

/**
 * An empty step routing (every expert -1) for the manifest's run.
 * @category constructors
 */
const empty = (manifest: Manifest): StepRouting => {
  const tokens = manifest.globalBatch * manifest.seq
  return { layers: manifest.layers, tokens, topk: manifest.topk, experts: new Int32Array(manifest.layers.length * tokens * manifest.topk).fill(-1) }
}

/**
 * The experts of `places` (in the step) at `layer`, [places.length * K].
 * @category mapping
 */
export const expertsAt = (routing: StepRouting, layer: number, places: ArrayLike<number>): Int32Array => {
  const l = routing.layers.indexOf(layer)
  if (l < 0) throw new Error(`RoutingFiles.expertsAt: layer ${layer} is not one of the routers ${routing.layers.join(",")}`)
  const k = routing.topk
  const out = new Int32Array(places.length * k)
  for (let r = 0; r < places.length; r++) {
    const from = (l * routing.tokens + (places[r] as number)) * k
    out.set(routing.experts.subarray(from, from + k), r * k)
  }
  return out
}

/**
 * Writes step n's file from every rank's entries (the driver, once every rank reported the
 * step). Every token of every MoE layer must have been routed by some rank.
 * @category constructors
 */
export const recordStep = (dir: string, manifest: Manifest, step: number, entries: Iterable<Entry>, field = "routing-record"): void => {
  const routing = empty(manifest)
  fill(routing, entries)
  const missing = routing.experts.indexOf(-1)
  if (missing >= 0) {
    const token = Math.floor(missing / routing.topk)
    throw new Error(`RoutingFiles.recordStep: step ${step}, layer ${routing.layers[Math.floor(token / routing.tokens)]}, token ${token % routing.tokens}: no rank routed it`)
  }
  try {
    writeStep(dir, step, routing)
  } catch (e) {
    throw ConfigError.make(field, stepFile(dir, step), `could not be written (${why(e)})`, "free space there or record into another directory")
  }
}

/**
 * A routing directory as `pleat routing` and `pleat plan --routing` read it: its manifest (from
 * routing.json, or, without one, `inferred` from its step files: layers numbered 0 up, one
 * sequence of all the tokens, experts up to the largest index found) and its steps, ascending.
 * @category constructors
 */
export const recording = (dir: string, field: string): { readonly manifest: Manifest; readonly steps: ReadonlyArray<number>; readonly inferred: boolean } => {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw ConfigError.make(field, dir, "is not a directory", "name a directory --routing-record wrote")
  const steps = fs
    .readdirSync(dir)
    .map((f) => /^step-(\d{8})\.npy$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
  if (steps.length === 0) throw ConfigError.make(field, dir, "holds no step files (step-00000001.npy, ...)", "name a directory --routing-record wrote")
  if (fs.existsSync(manifestFile(dir))) return { manifest: readManifest(dir, field), steps, inferred: false }
  let shape: ReadonlyArray<number> = []
  let largest = 0
  for (const step of steps) {
    const file = stepFile(dir, step)
    const decoded = Npy.decodeIntegers(fs.readFileSync(file), `${field} ${file}`)
    if (decoded.shape.length !== 3 || (shape.length > 0 && decoded.shape.join(",") !== shape.join(","))) {
      throw ConfigError.make(
        `${field} ${file}`,
        `shape (${decoded.shape.join(", ")})`,
        `is not [MoE layers, tokens, topk]${shape.length > 0 ? ` as step ${steps[0]}'s (${shape.join(", ")})` : ""}`,
        "give every step file one [layers, tokens, topk] shape",
      )
    }
    shape = decoded.shape
    for (const e of decoded.data) largest = Math.max(largest, e)
  }
  const [layers, tokens, topk] = shape as [number, number, number]
  const manifest: Manifest = {
    format: "pleat-routing",
    version: 1,
    numExperts: largest + 1,
    topk,
    seq: tokens,
    globalBatch: 1,
    layers: Array.from({ length: layers }, (_, l) => l),
  }
  return { manifest, steps, inferred: true }
}
