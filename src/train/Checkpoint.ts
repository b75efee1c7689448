/**
 * Checkpoint: one step's per-rank shards with a manifest, checked before use, loadable under
 * another mapping (resharding).
 *
 * A step directory (see CheckpointDirectory for the directory of checkpoints around it and the
 * crash-safe protocol that publishes it) holds:
 *   manifest.json     step, seed, dtype, model, batch, the mapping it was saved under, and a
 *                     checksum of every rank file (written last: its presence means complete)
 *   rank-R.json       per saved slice: name, global shape, slice, offsets into rank-R.bin
 *   rank-R.bin        the slice's values (dtype) and its AdamW moments m, v (float32); the
 *                     values alone where the manifest says `moments: "zero"` (an import)
 * Loading reads this rank's slice under the new mapping from the parts of the saved slices that
 * overlap it (CheckpointRead), so any mapping can resume any checkpoint.
 *
 * Which slices a rank saves depends on its optimizer, never the format: with the replicated
 * optimizer, the shards it holds as the first rank of their replicas (the group their gradients
 * are summed over, RankParams.countsInNorm: data-parallel replicas hold the same values and
 * moments, and a checkpoint of dp 64 was 64 copies); with the distributed optimizer,
 * only the parts of the parameters whose state it keeps (DistributedSlices.ownedSlices),
 * each a rectangular slice: every element of the model is saved once, by one rank, and the
 * checkpoint holds the sharded state as it was. Either loads into either optimizer under any
 * mapping: the distributed one loads its shards' whole moments and keeps its parts (`adopt`).
 * The last stage's copy of a tied embedding (RankParams) is never saved: it is the first
 * stage's embedding bit for bit, and loads from it (so a tied checkpoint of any pp resumes at
 * any other). The manifest records untied embeddings (`untieEmbeddings`; absent: tied), and a
 * run resumes only a checkpoint of its own kind.
 *
 * Everything read comes from outside (a directory a user points at): the manifest and the
 * shard tables are decoded with Schemas (CheckpointRankFiles), every file's checksum is
 * compared, and the shard table must lay out its .bin exactly in the manifest's dtype. Whatever
 * makes a checkpoint unusable (missing, no complete step, a corrupt or damaged file, another
 * model, seed or dtype) is a ConfigError on the field `resume` naming the file or the fields,
 * reported before any step: the driver's `manifestFor` checks all but the rank .bin files'
 * bytes, which a training run's ranks hash together (CheckpointCheck: each rank a share, on
 * its own thread or process). A rank loading hashes the files it reads where neither its
 * process nor the driver has checked them (CheckpointVerified), never the whole checkpoint.
 */
import { existsSync, readFileSync, statSync } from "node:fs"
import path from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as ConfigError from "../errors/ConfigError.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as ManifestModel from "./ManifestModel.js"
import type * as DType from "../tensor/DType.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as Checksum from "./CheckpointChecksum.js"
import * as CheckpointIdentity from "./CheckpointIdentity.js"
import * as CheckpointRead from "./CheckpointRead.js"
import * as CheckpointVerified from "./CheckpointVerified.js"
import * as RankFiles from "./CheckpointRankFiles.js"
import * as Directory from "./CheckpointDirectory.js"
import * as Durable from "./CheckpointDurable.js"
import type * as ModelConfig from "./ModelConfig.js"
import type * as Optimizer from "./Optimizer.js"
import * as RankParams from "./RankParams.js"

const count = ManifestModel.count
const { unusable, oneLine } = RankFiles
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
  model: ManifestModel.ManifestModelSchema,
  batch: Schema.Struct({ microBatch: count, globalBatch: count }),
  ranks: count,
  /** A checksum of every rank file, by file name (CheckpointChecksum: SHA-256, or FNV-1a 64 in older checkpoints). */
  checksums: Schema.Record(Schema.String, Schema.String),
  /**
   * "zero": the AdamW moments are zero and not stored (an import's step 0): each shard holds its
   * values alone. Absent: every shard holds its values, m and v.
   */
  moments: Schema.optionalKey(Schema.Literal("zero")),
  /** Runs with --expert-bias: each MoE layer's bias at the step (by layer), exact in JSON. */
  expertBias: Schema.optionalKey(Schema.Record(Schema.String, Schema.Array(Schema.Number))),
  /** Runs with --quantile-balancing: each MoE layer's beta at the step (by layer), exact in JSON. */
  quantileBeta: Schema.optionalKey(Schema.Record(Schema.String, Schema.Array(Schema.Number))),
})

/**
 * The manifest of a checkpoint.
 * @category models
 */
export type Manifest = typeof ManifestSchema.Type

/**
 * The model as a manifest records it: every setting, the router options always (a model without
 * them routes as MoeSettings.defaults with the run's aux coefficient `auxLossCoeff`), the
 * shared-expert keys, the latent width and denseFirst only when set (denseFirst 0 as absent).
 * @category constructors
 */
export const modelRecord = (model: ModelConfig.ModelConfig, auxLossCoeff: number): Manifest["model"] => {
  const { sharedExpertFfn, sharedExpertGate, moeLatentSize, moe, denseFirst, ...rest } = model
  // once a job: the run record's router
  const router = moe ?? { ...MoeSettings.defaults, auxLosses: [{ type: "aux" as const, coeff: auxLossCoeff }] }
  const dense = denseFirst === undefined || denseFirst === 0 ? {} : { denseFirst }
  // once a job: the run record's optional keys
  const optional = { ...(sharedExpertFfn === undefined ? {} : { sharedExpertFfn }), ...(sharedExpertGate === undefined ? {} : { sharedExpertGate }) }
  // once a job: the run record's model
  return { ...rest, moe: router, ...dense, ...optional, ...(moeLatentSize === undefined ? {} : { moeLatentSize }) }
}

/**
 * One slice of a parameter a rank writes: its values and the AdamW moments of those values.
 * @category models
 */
export interface Shard {
  readonly name: string
  /** The parameter's global shape. */
  readonly shape: ReadonlyArray<number>
  readonly slice: ReadonlyArray<[number, number]>
  readonly value: DType.Storage
  /** Its moments; left out in a checkpoint whose manifest says `moments: "zero"` (then by every shard). */
  readonly m?: Float32Array
  readonly v?: Float32Array
}

/**
 * Writes one rank's slices into a step directory, each file flushed to the disk; returns their
 * checksums for the manifest. The slices are taken from `shards` one at a time and written as
 * they come (never copied into one buffer), so a generator that makes each slice when asked
 * (an import) holds one slice at a time.
 * @category constructors
 */
export const writeShards = (stepDir: string, rank: number, shards: Iterable<Shard>): Record<string, string> => {
  const entries: Array<RankFiles.ShardEntry> = []
  const hash = Checksum.make()
  let offset = 0
  function* parts(): Generator<Uint8Array> {
    for (const shard of shards) {
      const at = offset
      const valueEnd = at + shard.value.byteLength
      const mBytes = shard.m?.byteLength ?? 0
      entries.push({ name: shard.name, shape: shard.shape, slice: shard.slice, offsets: [at, valueEnd, valueEnd + mBytes] })
      offset = valueEnd + mBytes + (shard.v?.byteLength ?? 0)
      for (const a of [shard.value, shard.m, shard.v]) {
        if (a === undefined) continue
        for (const bytes of Durable.byteViews(a)) {
          hash.update(bytes)
          yield bytes
        }
      }
    }
  }
  const [binName, tableName] = RankFiles.rankFiles(rank)
  Durable.makeDirectory(stepDir)
  Durable.writeFileParts(path.join(stepDir, binName), parts())
  const table = Buffer.from(JSON.stringify(entries), "utf8")
  Durable.writeFile(path.join(stepDir, tableName), table)
  return { [binName]: hash.digest(), [tableName]: Checksum.of(table) }
}

/**
 * Writes the shards this rank holds as the first of their replicas (`groups`: its
 * RankParams.syncGroups) with their whole moments: the replicated optimizer's state, each
 * element once (never a tied embedding's copy).
 * @category constructors
 */
export const writeRank = (
  stepDir: string,
  rank: number,
  params: ReadonlyMap<string, RankParams.Held>,
  moments: ReadonlyMap<string, Optimizer.Moments>,
  groups: RankParams.SyncGroups,
): Record<string, string> =>
  writeShards(
    stepDir,
    rank,
    [...params].flatMap(([name, held]) => {
      const m = moments.get(name) as Optimizer.Moments
      return RankParams.countsInNorm(held, groups, rank) ? [{ name, shape: held.spec.shape, slice: held.slice, value: held.value.data, m: m.m, v: m.v }] : []
    }),
  )

/** The step directory to load from `dir`, and its decoded manifest. */
const open = (dir: string): { readonly stepDir: string; readonly manifest: Manifest } => {
  if (!existsSync(dir)) throw unusable(dir, "holds no complete checkpoint (the directory does not exist)")
  if (!statSync(dir).isDirectory()) throw unusable(dir, "is not a directory")
  const stepDir = Directory.locate(dir)
  if (stepDir === undefined) {
    throw unusable(
      dir,
      "holds no complete checkpoint (no step directory with a manifest.json)",
      "pass a directory written by --save (a save that did not finish leaves the previous checkpoint, or none)",
    )
  }
  const where = path.relative(dir, Directory.manifestOf(stepDir))
  let json: unknown
  try {
    json = JSON.parse(readFileSync(Directory.manifestOf(stepDir), "utf8"))
  } catch (error) {
    throw unusable(dir, `has a ${where} that cannot be read as JSON (${oneLine(error instanceof Error ? error.message : String(error))})`)
  }
  const decoded = Schema.decodeUnknownResult(ManifestSchema)(json)
  if (Result.isFailure(decoded)) {
    throw unusable(dir, `has a ${where} that is not a pleat checkpoint manifest (${oneLine(SchemaIssue.makeFormatterDefault()(decoded.failure.issue))})`)
  }
  return { stepDir, manifest: decoded.success }
}

/**
 * Reads and decodes the manifest of the checkpoint `dir` loads (see CheckpointDirectory); a
 * directory that holds no usable checkpoint throws a ConfigError on `resume` naming the
 * directory and what is wrong with it.
 * @category constructors
 */
export const manifest = (dir: string): Manifest => open(dir).manifest

/**
 * The manifest of a checkpoint that this run can resume, every file checked: as `manifest`,
 * and a damaged file, or a checkpoint of another model, seed or dtype, is a ConfigError
 * naming the file, or each field that differs with its saved value. `hashBins` false leaves
 * the rank .bin files' checksums (all but their bytes: the bulk of a checkpoint) to
 * CheckpointCheck, which a training run has its ranks share (Train); a rank loading later
 * hashes only the files it reads, and those only where neither its process nor the driver has.
 * @category constructors
 */
export const manifestFor = (dir: string, run: CheckpointIdentity.RunIdentity, hashBins = true): Manifest => {
  const { stepDir, manifest: m } = open(dir)
  const { saved, here } = CheckpointIdentity.differences({ model: m.model, seed: m.seed, dtype: m.dtype }, run)
  if (saved.length > 0) {
    throw unusable(
      dir,
      `was saved from another run (${saved.join(", ")}; this run has ${here.join(", ")})`,
      `resume with the settings it was saved with (${saved.join(", ")}), or train without --resume`,
    )
  }
  RankFiles.read(dir, stepDir, m, () => hashBins)
  return m
}

/**
 * A rank's .bin file of a checkpoint, to hash: its path, the manifest's checksum of it, its size.
 * @category models
 */
export interface BinToCheck {
  readonly file: string
  readonly checksum: string
  readonly bytes: number
}

/**
 * The rank .bin files of the checkpoint `dir` loads that this isolate has not found to match
 * their checksums (CheckpointVerified), in rank order; its structure already checked
 * (`manifestFor` with `hashBins` false).
 * @category getters
 */
export const binsToCheck = (dir: string): Array<BinToCheck> => {
  const { stepDir, manifest: m } = open(dir)
  return Array.from({ length: m.ranks }, (_, r) => {
    const [bin] = RankFiles.rankFiles(r)
    const file = path.join(stepDir, bin)
    const checksum = m.checksums[bin] as string
    const { key, size } = CheckpointVerified.keyOf(file, checksum)
    return CheckpointVerified.has(key) ? [] : [{ file, checksum, bytes: size }]
  }).flat()
}

/**
 * Loads this rank's shards (values and moments) from a checkpoint saved under any mapping.
 * @category combinators
 */
export const loadInto = (dir: string, params: ReadonlyMap<string, RankParams.Held>, moments: ReadonlyMap<string, Optimizer.Moments>): void => {
  const { stepDir, manifest: m } = open(dir)
  const files = RankFiles.read(dir, stepDir, m, () => false)
  for (const [name, held] of params) {
    const found = shardsOf(dir, files, name)
    for (const { e } of found) {
      if (e.shape.join("x") !== held.spec.shape.join("x")) throw unusable(dir, `has ${name} of shape ${e.shape.join("x")}, this model's is ${held.spec.shape.join("x")}`)
    }
    // This rank's slice of each field, read from the saved shards that overlap it (CheckpointRead),
    // each file checked before it is read (once a process: CheckpointVerified).
    held.value.data.set(regionOf(dir, found, name, held.slice, 0, m.dtype).data)
    const mo = moments.get(name) as Optimizer.Moments
    if (m.moments === "zero") {
      mo.m.fill(0)
      mo.v.fill(0)
      continue
    }
    mo.m.set(regionOf(dir, found, name, held.slice, 1, "float32").data)
    mo.v.set(regionOf(dir, found, name, held.slice, 2, "float32").data)
  }
}

/**
 * A checkpoint's parameters, each assembled when asked for.
 * @category models
 */
export interface Stored {
  readonly manifest: Manifest
  /** Every parameter's global shape, by name in the order of the first rank file that holds each. */
  readonly shapes: ReadonlyMap<string, ReadonlyArray<number>>
  /** The parameter `name`, whole, in the checkpoint's dtype, read from its shards at each call. */
  readonly value: (name: string) => Tensor.Tensor
}

/**
 * The parameters of a checkpoint saved under any mapping (the model as one rank holds it, the
 * last stage's copy of a tied embedding aside), each read when asked for, so that a reader (an
 * export) holds one at a time; every file is checked first, as a resume checks it.
 * @category constructors
 */
export const stored = (dir: string): Stored => {
  const { stepDir, manifest: m } = open(dir)
  const files = RankFiles.read(dir, stepDir, m, () => true)
  const shapes = new Map<string, ReadonlyArray<number>>()
  for (const name of new Set(files.flatMap((f) => f.entries.map((e) => e.name)))) {
    const found = shardsOf(dir, files, name)
    const shape = found[0]?.e.shape ?? []
    if (found.some(({ e }) => e.shape.join("x") !== shape.join("x"))) throw unusable(dir, `has shards of ${name} that disagree on its shape`, RankFiles.otherCheckpointFix(stepDir))
    shapes.set(name, shape)
  }
  const value = (name: string): Tensor.Tensor =>
    regionOf(
      dir,
      shardsOf(dir, files, name),
      name,
      (shapes.get(name) ?? []).map((n): [number, number] => [0, n]),
      0,
      m.dtype,
    )
  return { manifest: m, shapes, value }
}

/**
 * Every parameter of a checkpoint saved under any mapping, whole, in its dtype, by name (`stored`,
 * all read at once), with its manifest.
 * @category constructors
 */
export const values = (dir: string): { readonly manifest: Manifest; readonly values: ReadonlyMap<string, Tensor.Tensor> } => {
  const s = stored(dir)
  return { manifest: s.manifest, values: new Map([...s.shapes.keys()].map((name) => [name, s.value(name)])) }
}

/** Every saved shard of parameter `name`, with the rank file it lies in. */
const shardsOf = (
  dir: string,
  files: ReadonlyArray<RankFiles.RankFile>,
  name: string,
): Array<{ readonly bin: string; readonly e: RankFiles.ShardEntry; readonly verify: () => void }> => {
  const found = files.flatMap((f) => f.entries.filter((e) => e.name === name).map((e) => ({ bin: f.bin, e, verify: f.verify })))
  if (found.length === 0) throw unusable(dir, `has no parameter ${name}`, "resume with the model it was saved with")
  return found
}

/** The region `want` of one saved field of a parameter (its value, or one of Adam's moments) from its shards. */
const regionOf = (
  dir: string,
  found: ReadonlyArray<{ readonly bin: string; readonly e: RankFiles.ShardEntry; readonly verify: () => void }>,
  name: string,
  want: ReadonlyArray<readonly [number, number]>,
  field: 0 | 1 | 2,
  dtype: DType.DType,
): Tensor.Tensor => {
  try {
    return CheckpointRead.region(
      found.map(({ bin, e, verify }) => ({ file: bin, slice: e.slice, at: e.offsets[field], verify })),
      want,
      dtype,
    )
  } catch (error) {
    // A damaged file found as it was about to be read is said as such.
    if (ConfigError.isConfigError(error)) throw error
    throw unusable(dir, `has an incomplete ${name}: ${error instanceof Error ? error.message : String(error)}`)
  }
}
