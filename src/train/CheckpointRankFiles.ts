/**
 * CheckpointRankFiles: the rank files of a checkpoint's step directory (rank-R.bin, the shards'
 * values and moments end to end; rank-R.json, their table), read and checked against the
 * manifest: each file's checksum, the table's schema, its layout in the dtype.
 *
 * A shard table is small and always checked. A .bin is hashed (16 MiB at a time, once a process
 * while unchanged: CheckpointVerified) when `hashed` says so (an export, a `manifestFor` that
 * checks everything), by a training run's ranks together before any step (CheckpointCheck), or
 * later by `verify` before its shards are read (a resuming rank, where neither its process nor
 * the driver has: each process of an MPI job hashed the whole checkpoint before).
 */
import { existsSync, readFileSync, statSync } from "node:fs"
import path from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as ConfigError from "../errors/ConfigError.js"
import * as DType from "../tensor/DType.js"
import * as Checksum from "./CheckpointChecksum.js"
import * as CheckpointDirectory from "./CheckpointDirectory.js"
import * as CheckpointVerified from "./CheckpointVerified.js"

const natural = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

/** The schema of rank-R.json: one entry per held shard; offsets of value, m, v in rank-R.bin. */
const ShardTable = Schema.Array(
  Schema.Struct({
    name: Schema.String,
    shape: Schema.Array(natural),
    slice: Schema.Array(Schema.Tuple([natural, natural])),
    offsets: Schema.Tuple([natural, natural, natural]),
  }),
)

/**
 * One saved shard as its rank's table records it.
 * @category models
 */
export type ShardEntry = (typeof ShardTable.Type)[number]

/**
 * A checkpoint that cannot be resumed: a ConfigError on `resume` naming the directory.
 * @category constructors
 */
export const unusable = (dir: string, reason: string, fix = "pass a directory written by --save"): ConfigError.ConfigError => ConfigError.make("resume", dir, reason, fix)

/**
 * `text` on one line.
 * @category constructors
 */
export const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/**
 * The names of rank `rank`'s files: its shards and their table.
 * @category constructors
 */
export const rankFiles = (rank: number) => [`rank-${rank}.bin`, `rank-${rank}.json`] as const

/**
 * One rank's files, checked: the table held, the .bin read later only where a shard lies, so a
 * load holds a parameter at a time, never a rank file. `verify` hashes the .bin unless this
 * process already has (a no-op then).
 * @category models
 */
export interface RankFile {
  readonly entries: ReadonlyArray<ShardEntry>
  readonly bin: string
  readonly verify: () => void
}

/** What of the manifest the rank files are checked against. */
interface Expected {
  readonly ranks: number
  readonly dtype: DType.DType
  readonly checksums: Readonly<Record<string, string>>
  readonly moments?: "zero" | undefined
}

/**
 * The fix for a damaged step directory `stepDir` (for a resume or an export): the other complete
 * ones beside it, newest first, or, where there is none, that there is none.
 * @category constructors
 */
export const otherCheckpointFix = (stepDir: string): string => {
  const [newest, ...rest] = CheckpointDirectory.completeBeside(stepDir)
  if (newest === undefined) return `use another checkpoint (${path.dirname(stepDir)} holds no other complete step)`
  return `pass another complete step directory instead: ${newest}${rest.length === 0 ? "" : ` (or ${rest.join(", ")})`}`
}

/** A damaged file of the step directory `stepDir` of checkpoint `dir`: a ConfigError naming it and why. */
const damaged = (dir: string, stepDir: string, file: string, why: string): ConfigError.ConfigError =>
  unusable(dir, `has a damaged ${path.relative(dir, path.join(stepDir, file))} (${why})`, otherCheckpointFix(stepDir))

/**
 * What hashing a file against its recorded checksum found: a match (its CheckpointVerified key,
 * taken before the hash, and its bytes), or the checksum it has.
 * @category models
 */
export type Hashed = { readonly key: string; readonly bytes: number } | { readonly actual: string }

/**
 * Hashes `file` against the checksum `expected` records (its algorithm by the record's form).
 * @category constructors
 */
export const hashAgainst = (file: string, expected: string): Hashed => {
  const { key } = CheckpointVerified.keyOf(file, expected)
  const actual = Checksum.ofFile(file, Checksum.algorithmOf(expected))
  return actual.checksum === expected ? { key, bytes: actual.bytes } : { actual: actual.checksum }
}

/**
 * A file whose checksum is not the manifest's.
 * @category constructors
 */
export const mismatch = (dir: string, stepDir: string, file: string, actual: string, expected: string): ConfigError.ConfigError =>
  damaged(dir, stepDir, file, `checksum ${actual}, manifest.json records ${expected}`)

/**
 * The `m.ranks` rank files of the step directory `stepDir` of checkpoint `dir`, each checked
 * (the .bin of rank r hashed now where `hashed(r)`); a missing or damaged file is a ConfigError
 * naming it.
 * @category constructors
 */
export const read = (dir: string, stepDir: string, m: Expected, hashed: (rank: number) => boolean): Array<RankFile> => {
  const width = DType.bytesPer(m.dtype)
  const damagedHere = (file: string, why: string) => damaged(dir, stepDir, file, why)
  // `file`'s size, its checksum compared with the manifest's when `hash` (CheckpointVerified: once a process while unchanged).
  const checked = (file: string, hash: boolean): number => {
    const where = path.join(stepDir, file)
    if (!existsSync(where)) throw unusable(dir, `lacks ${file} of its ${m.ranks} ranks`)
    const expected = m.checksums[file]
    if (expected === undefined) throw damagedHere(file, "manifest.json records no checksum of it")
    if (!hash) return statSync(where).size
    const { key, size } = CheckpointVerified.keyOf(where, expected)
    if (CheckpointVerified.has(key)) return size
    const found = hashAgainst(where, expected)
    if (!("key" in found)) throw mismatch(dir, stepDir, file, found.actual, expected)
    CheckpointVerified.add(found.key)
    return found.bytes
  }
  return Array.from({ length: m.ranks }, (_, r) => {
    const [binName, tableName] = rankFiles(r)
    let verified = hashed(r)
    const binBytes = checked(binName, verified)
    checked(tableName, true)
    let json: unknown
    try {
      json = JSON.parse(readFileSync(path.join(stepDir, tableName), "utf8"))
    } catch {
      throw damagedHere(tableName, "not JSON")
    }
    const decoded = Schema.decodeUnknownResult(ShardTable)(json)
    if (Result.isFailure(decoded)) throw damagedHere(tableName, `not a shard table: ${oneLine(SchemaIssue.makeFormatterDefault()(decoded.failure.issue))}`)
    // The shards lie end to end: values in the dtype, then m and v in float32 (none when the moments are zero).
    const momentBytes = m.moments === "zero" ? 0 : 4
    let at = 0
    for (const e of decoded.success) {
      const n = e.slice.reduce((p, [a, b]) => p * (b - a), 1)
      const expected = [at, at + n * width, at + n * width + n * momentBytes] as const
      if (e.offsets.some((o, i) => o !== expected[i])) throw damagedHere(tableName, `${e.name} is not laid out as ${m.dtype} values as manifest.json says`)
      at = expected[2] + n * momentBytes
    }
    if (at !== binBytes) throw damagedHere(binName, `${binBytes} bytes, its table lays out ${at} in ${m.dtype}`)
    // Once for this reading of the checkpoint (a load calls it before every read from the file).
    const verify = () => {
      if (verified) return
      checked(binName, true)
      verified = true
    }
    return { entries: decoded.success, bin: path.join(stepDir, binName), verify }
  })
}
