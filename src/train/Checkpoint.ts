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
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import path from "node:path"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
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

/**
 * The manifest of a checkpoint.
 * @category models
 */
export interface Manifest {
  readonly step: number
  readonly seed: number
  readonly dtype: DType.DType
  readonly world: number
  readonly mapping: unknown
  readonly model: unknown
  readonly batch: unknown
  readonly ranks: number
}

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
 * Reads a checkpoint's manifest (a missing or partial checkpoint is an error naming the dir).
 * @category constructors
 */
export const manifest = (dir: string): Manifest => {
  const file = path.join(dir, "manifest.json")
  if (!existsSync(file)) throw new Error(`resume: ${dir} holds no complete checkpoint (no manifest.json); fix: pass a directory written by --save`)
  return JSON.parse(readFileSync(file, "utf8")) as Manifest
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
    if (!found) throw new Error(`resume: the checkpoint in ${dir} has no parameter ${name}; fix: resume with the model it was saved with`)
    held.value.data.set(Params.slice(value, held.slice).data)
    const mo = moments.get(name) as Optimizer.Moments
    mo.m.set(Params.slice(mm, held.slice).data)
    mo.v.set(Params.slice(vv, held.slice).data)
  }
}
