/**
 * Checkpoint: per-rank shards with a manifest, written atomically, loadable under another
 * mapping (resharding).
 *
 * Layout of a checkpoint directory:
 *   manifest.json     step, seed, dtype, model, batch, the mapping it was saved under, files
 *   rank-R.json       per held shard: name, global shape, slice, offsets into rank-R.bin
 *   rank-R.bin        the shard values (dtype) and the AdamW moments m, v (float32)
 * Saving writes everything into `DIR.tmp`, then the manifest last, then renames `DIR.tmp` to
 * `DIR` (the previous `DIR` is moved aside first and removed only after the rename). A crash
 * mid-save leaves the previous checkpoint intact (and at worst a stale DIR.tmp, which the next
 * save clears). Loading assembles each parameter's full value from every saved shard and cuts
 * this rank's slice under the new mapping, so any mapping can resume any checkpoint.
 *
 * The manifest comes from outside (a file a user points at), so it is decoded with a Schema.
 * Whatever makes a directory unusable (missing, no or corrupt manifest, missing rank files, a
 * manifest of another model) is a ConfigError on the field `resume`: the user's input, not a
 * bug, reported before any work starts.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import path from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as ConfigError from "../errors/ConfigError.js"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as ModelConfig from "./ModelConfig.js"
import type * as Optimizer from "./Optimizer.js"
import * as Params from "./Params.js"
import type * as RankParams from "./RankParams.js"

interface ShardEntry {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly slice: ReadonlyArray<[number, number]>
  /** Byte offsets of value, m, v in the rank's .bin file. */
  readonly offsets: readonly [number, number, number]
}

const count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))
const natural = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

/**
 * The schema of manifest.json (unknown keys are ignored, so newer manifests still load).
 * @category models
 */
const ManifestSchema = Schema.Struct({
  step: natural,
  seed: Schema.Number.check(Schema.isInt()),
  dtype: Schema.Literals(["float32", "float64"]),
  world: count,
  mapping: Schema.Struct({ tp: count, cp: count, dp: count, pp: count, etp: count, ep: count, edp: count, vpp: Schema.NullOr(count), order: Schema.String }),
  model: Schema.Struct({
    vocab: count,
    hidden: count,
    layers: count,
    heads: count,
    kvHeads: count,
    ffn: count,
    experts: count,
    topk: count,
    moeFfn: count,
    moeEvery: count,
    seq: count,
  }),
  batch: Schema.Struct({ microBatch: count, globalBatch: count }),
  ranks: count,
})

/**
 * The manifest of a checkpoint.
 * @category models
 */
export type Manifest = typeof ManifestSchema.Type

/** The sizes that shape the parameters: a checkpoint resumes only a model equal in these. */
const shapingFields = ["vocab", "hidden", "layers", "heads", "kvHeads", "ffn", "experts", "moeFfn", "moeEvery"] as const

const unusable = (dir: string, reason: string, fix = "pass a directory written by --save"): ConfigError.ConfigError => ConfigError.make("resume", dir, reason, fix)

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/**
 * The temporary directory a save writes into.
 * @category mapping
 */
export const temporary = (dir: string): string => `${dir}.tmp`

/**
 * Starts a save: clears a stale temporary directory and creates a fresh one.
 * @category constructors
 */
export const begin = (dir: string): void => {
  rmSync(temporary(dir), { recursive: true, force: true })
  mkdirSync(temporary(dir), { recursive: true })
}

/**
 * Writes one rank's shards and moments into the temporary directory.
 * @category constructors
 */
export const writeRank = (dir: string, rank: number, params: ReadonlyMap<string, RankParams.Held>, moments: ReadonlyMap<string, Optimizer.Moments>): void => {
  const chunks: Array<Uint8Array> = []
  const entries: Array<ShardEntry> = []
  let offset = 0
  const push = (a: DType.Storage | Float32Array) => {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice()
    chunks.push(bytes)
    const at = offset
    offset += bytes.byteLength
    return at
  }
  for (const [name, held] of params) {
    const m = moments.get(name) as Optimizer.Moments
    entries.push({ name, shape: held.spec.shape, slice: held.slice, offsets: [push(held.value.data), push(m.m), push(m.v)] })
  }
  const bin = new Uint8Array(offset)
  let at = 0
  for (const c of chunks) {
    bin.set(c, at)
    at += c.byteLength
  }
  writeFileSync(path.join(temporary(dir), `rank-${rank}.bin`), bin)
  writeFileSync(path.join(temporary(dir), `rank-${rank}.json`), JSON.stringify(entries))
}

/**
 * Finishes a save: the manifest last, then the atomic swap of directories.
 * @category constructors
 */
export const commit = (dir: string, manifest: Manifest): void => {
  writeFileSync(path.join(temporary(dir), "manifest.json"), JSON.stringify(manifest, null, 2))
  const old = `${dir}.old`
  rmSync(old, { recursive: true, force: true })
  if (existsSync(dir)) renameSync(dir, old)
  renameSync(temporary(dir), dir)
  rmSync(old, { recursive: true, force: true })
}

/**
 * Reads and decodes a checkpoint's manifest; a directory that holds no usable checkpoint
 * throws a ConfigError on `resume` naming the directory and what is wrong with it.
 * @category constructors
 */
export const manifest = (dir: string): Manifest => {
  if (!existsSync(dir)) throw unusable(dir, "holds no complete checkpoint (the directory does not exist)")
  if (!statSync(dir).isDirectory()) throw unusable(dir, "is not a directory")
  const file = path.join(dir, "manifest.json")
  if (!existsSync(file)) {
    throw unusable(
      dir,
      "holds no complete checkpoint (no manifest.json)",
      "pass a directory written by --save (a save that did not finish leaves the previous checkpoint, or none)",
    )
  }
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, "utf8"))
  } catch (error) {
    throw unusable(dir, `has a manifest.json that cannot be read as JSON (${oneLine(error instanceof Error ? error.message : String(error))})`)
  }
  const decoded = Schema.decodeUnknownResult(ManifestSchema)(json)
  if (Result.isFailure(decoded)) {
    throw unusable(dir, `has a manifest.json that is not a pleat checkpoint manifest (${oneLine(SchemaIssue.makeFormatterDefault()(decoded.failure.issue))})`)
  }
  const m = decoded.success
  for (let r = 0; r < m.ranks; r++) {
    for (const part of [`rank-${r}.json`, `rank-${r}.bin`]) {
      if (!existsSync(path.join(dir, part))) throw unusable(dir, `lacks ${part} of its ${m.ranks} ranks`)
    }
  }
  return m
}

/**
 * The manifest of a checkpoint that `model` can resume: as `manifest`, and a checkpoint of
 * another model (a size that shapes the parameters differs) is a ConfigError listing each.
 * @category constructors
 */
export const manifestFor = (dir: string, model: ModelConfig.ModelConfig): Manifest => {
  const m = manifest(dir)
  const differ = shapingFields.filter((f) => m.model[f] !== model[f])
  if (differ.length > 0) {
    const saved = differ.map((f) => `${f} ${m.model[f]}`).join(", ")
    const here = differ.map((f) => `${f} ${model[f]}`).join(", ")
    throw unusable(dir, `was saved from another model (${saved}; this run has ${here})`, `resume with the sizes it was saved with (${saved}), or train without --resume`)
  }
  return m
}

/**
 * Loads this rank's shards (values and moments) from a checkpoint saved under any mapping.
 * @category combinators
 */
export const loadInto = (dir: string, params: ReadonlyMap<string, RankParams.Held>, moments: ReadonlyMap<string, Optimizer.Moments>): void => {
  const m = manifest(dir)
  const width = DType.bytesPer(m.dtype)
  const files = Array.from({ length: m.ranks }, (_, r) => ({
    entries: JSON.parse(readFileSync(path.join(dir, `rank-${r}.json`), "utf8")) as Array<ShardEntry>,
    bin: readFileSync(path.join(dir, `rank-${r}.bin`)),
  }))
  for (const [name, held] of params) {
    const value = Tensor.zeros(held.spec.shape, { dtype: m.dtype })
    const mm = Tensor.zeros(held.spec.shape, { dtype: "float32" })
    const vv = Tensor.zeros(held.spec.shape, { dtype: "float32" })
    let found = false
    for (const f of files) {
      for (const e of f.entries) {
        if (e.name !== name) continue
        found = true
        const n = e.slice.reduce((p, [a, b]) => p * (b - a), 1)
        const shape = e.slice.map(([a, b]) => b - a)
        const read = (at: number, bytes: number, dtype: DType.DType) => {
          const copy = new Uint8Array(f.bin.subarray(at, at + n * bytes))
          return Tensor.fromStorage(dtype === "float32" ? new Float32Array(copy.buffer) : new Float64Array(copy.buffer), shape)
        }
        Params.place(value, e.slice, read(e.offsets[0], width, m.dtype))
        Params.place(mm, e.slice, read(e.offsets[1], 4, "float32"))
        Params.place(vv, e.slice, read(e.offsets[2], 4, "float32"))
      }
    }
    if (!found) throw unusable(dir, `has no parameter ${name}`, "resume with the model it was saved with")
    held.value.data.set(Params.slice(value, held.slice).data)
    const mo = moments.get(name) as Optimizer.Moments
    mo.m.set(Params.slice(mm, held.slice).data)
    mo.v.set(Params.slice(vv, held.slice).data)
  }
}
