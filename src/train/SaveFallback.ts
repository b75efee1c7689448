/**
 * SaveFallback: where a checkpoint goes when the directory it was planned in cannot take it, so
 * that a failed save (a full disk, a directory removed or made read-only mid-run) never throws
 * a run's trained state away.
 *
 * Before the job, each planned step directory DIR/step-N gets a fallback step directory of the
 * same name in a fallback checkpoint directory, `pleat-fallback-<name of DIR>-<pid>` under the
 * system's temporary directory (os.tmpdir(): TMPDIR, else /tmp), a path that does not exist yet
 * (`-2`, `-3`, ... when it does). It is created only when a save fails. It lies under the
 * temporary directory rather than beside DIR because what makes a save fail mid-run (a full
 * disk, a file system remounted read-only, a quota) is DIR's file system, which a sibling
 * would share.
 *
 * A rank that cannot write its shards into the planned step directory writes them into the
 * fallback one; if that fails too it reports that it wrote nowhere, and trains on. Once every
 * rank has reported, the driver publishes the checkpoint where it can: in DIR when every rank
 * wrote there and the publication works; else in the fallback directory, after copying the
 * shards that did reach DIR (each checked against its checksum); else nowhere, and the last
 * published checkpoint stays the latest intact one. Whatever did not work is a SaveFailure,
 * which says where the state went.
 */
import { existsSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Checksum from "./CheckpointChecksum.js"
import * as Directory from "./CheckpointDirectory.js"
import * as Durable from "./CheckpointDurable.js"

/**
 * A checkpoint the job will write: after `step` steps, into the step directory `dir`, or, when
 * that fails, into `fallback`.
 * @category models
 */
export interface Plan {
  readonly step: number
  readonly dir: string
  readonly fallback: string
}

/**
 * Where one rank's shards of a checkpoint went, with their checksums by file name.
 * @category models
 */
export interface RankWrite {
  readonly checksums: Record<string, string>
  readonly into: "planned" | "fallback" | "none"
  /** Why the planned step directory failed, when it did (one line). */
  readonly failed?: string
  /** Why the fallback failed too, when it did (one line). */
  readonly fallbackFailed?: string
}

/**
 * A save that did not land where it was planned.
 * @category models
 */
export interface SaveFailure {
  readonly step: number
  /** The step directory the save was planned in, and why it failed there. */
  readonly planned: string
  readonly reason: string
  /** The fallback step directory: it holds the checkpoint unless `fallbackReason` says why not. */
  readonly fallback: string
  readonly fallbackReason: string | undefined
  /** When the checkpoint was lost: the newest intact checkpoint left (step and step directory). */
  readonly latest: { readonly step: number; readonly dir: string } | undefined
}

/**
 * What became of a checkpoint once every rank had written: published where planned, in the
 * fallback, or nowhere.
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Planned" }
  | { readonly _tag: "Fallback"; readonly reason: string }
  | { readonly _tag: "Lost"; readonly reason: string; readonly fallbackReason: string }

/**
 * One line of an error.
 * @category mapping
 */
export const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim()

/**
 * The fallback checkpoint directory of a save into `save`: a path that does not exist yet.
 * @category constructors
 */
export const directoryFor = (save: string): string => {
  const base = path.join(tmpdir(), `pleat-fallback-${path.basename(path.resolve(save))}-${process.pid}`)
  let candidate = base
  for (let n = 2; existsSync(candidate); n++) candidate = `${base}-${n}`
  return candidate
}

/**
 * Writes one rank's files with `write` into the planned step directory, else into the
 * fallback; never throws.
 * @category constructors
 */
export const writeRank = (plan: Plan, write: (stepDir: string) => Record<string, string>): RankWrite => {
  try {
    return { checksums: write(plan.dir), into: "planned" }
  } catch (planned) {
    try {
      return { checksums: write(plan.fallback), into: "fallback", failed: describe(planned) }
    } catch (fallback) {
      return { checksums: {}, into: "none", failed: describe(planned), fallbackFailed: describe(fallback) }
    }
  }
}

/**
 * Copies a rank file from one step directory to another a piece at a time, flushed, checked
 * against its checksum as it is read (a mismatch throws after the copy, whose manifest is then
 * never published).
 */
const copyChecked = (from: string, to: string, file: string, checksum: string): void => {
  const hash = Checksum.make(Checksum.algorithmOf(checksum))
  function* hashed(): Generator<Uint8Array> {
    for (const piece of Checksum.piecesOf(path.join(from, file))) {
      hash.update(piece)
      yield piece
    }
  }
  Durable.writeFileParts(path.join(to, file), hashed())
  const actual = hash.digest()
  if (actual !== checksum) throw new Error(`${path.join(from, file)} reads back with checksum ${actual}, written as ${checksum}`)
}

/** Removes what a lost save left of its step directories (best effort: they may be unreachable). */
const discard = (plan: Plan): void => {
  for (const dir of [plan.dir, plan.fallback]) {
    try {
      Directory.abandon([dir])
    } catch {
      // An unreachable directory keeps its partial step directory, which no load reads.
    }
  }
}

/**
 * Publishes a checkpoint every rank has written (`writes`), with `manifestJson`: in the planned
 * step directory, else in the fallback one, else nowhere; never throws.
 * @category constructors
 */
export const publish = (plan: Plan, writes: ReadonlyArray<RankWrite>, manifestJson: string): Outcome => {
  const nowhere = writes.find((w) => w.into === "none")
  if (nowhere !== undefined) {
    discard(plan)
    return { _tag: "Lost", reason: nowhere.failed ?? "unknown", fallbackReason: nowhere.fallbackFailed ?? "unknown" }
  }
  let reason = writes.find((w) => w.failed !== undefined)?.failed
  if (reason === undefined) {
    try {
      Directory.publish(plan.dir, manifestJson)
      return { _tag: "Planned" }
    } catch (error) {
      reason = describe(error)
    }
  }
  try {
    Directory.prepare(path.dirname(plan.fallback), [])
    Durable.makeDirectory(plan.fallback)
    for (const w of writes) if (w.into === "planned") for (const [file, checksum] of Object.entries(w.checksums)) copyChecked(plan.dir, plan.fallback, file, checksum)
    Directory.publish(plan.fallback, manifestJson)
  } catch (error) {
    discard(plan)
    return { _tag: "Lost", reason, fallbackReason: describe(error) }
  }
  // What reached the planned directory is a partial step directory there, which no load reads.
  discard(plan)
  return { _tag: "Fallback", reason }
}

/**
 * The one line that tells a user where a failed save's state went.
 * @category mapping
 */
export const explain = (f: SaveFailure): string => {
  const home = path.dirname(f.planned)
  if (f.fallbackReason === undefined) {
    return `could not save step ${f.step} into ${home} (${f.reason}); saved it into ${f.fallback} instead: resume with --resume ${path.dirname(f.fallback)}`
  }
  const latest =
    f.latest === undefined ? "no earlier checkpoint is intact, so this run's state is not saved" : `the latest intact checkpoint is step ${f.latest.step} in ${f.latest.dir}`
  return `could not save step ${f.step} into ${home} (${f.reason}) nor into ${path.dirname(f.fallback)} (${f.fallbackReason}); ${latest}`
}
