/**
 * CheckpointCheck: a resume's checksums of the rank files, hashed by the job's ranks together
 * before any step.
 *
 * A checkpoint's bulk is its rank .bin files; SHA-256 reads them at ~1.5 GiB/s a core. Hashed
 * by the driver alone (rank 0's process under MPI), a 1 TB checkpoint kept every process
 * waiting ~11 minutes and pulled every byte through one machine. Here the files are dealt out
 * to the ranks (the largest first, each to the rank with the fewest bytes so far) and each rank
 * hashes its share in a job of its own on the run's backend: worker threads on their cores,
 * MPI processes on their machines. The driver learns every file's result: a mismatch is the
 * same ConfigError as the driver's own check (naming the file), and the matched files' keys
 * (CheckpointVerified) go to the training job's ranks, which then hash nothing they load.
 *
 * On the local backend (every rank on this thread) or with one rank, the driver hashes the files
 * itself: a job would run the same work on the same thread.
 */
import path from "node:path"
import * as Effect from "effect/Effect"
import * as Backend from "../runtime/Backend.js"
import type { RankFailed } from "../runtime/JobError.js"
import * as RankProgram from "../runtime/RankProgram.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as Checkpoint from "./Checkpoint.js"
import type * as CheckpointIdentity from "./CheckpointIdentity.js"
import * as RankFiles from "./CheckpointRankFiles.js"
import * as CheckpointVerified from "./CheckpointVerified.js"

/**
 * What a rank found of one file (CheckpointRankFiles.hashAgainst), with the file.
 * @category models
 */
export type FileResult = RankFiles.Hashed & { readonly file: string }

/**
 * The files each rank hashes, by rank.
 * @category models
 */
export interface CheckArgs {
  readonly byRank: ReadonlyArray<ReadonlyArray<Checkpoint.BinToCheck>>
}

/**
 * Deals `files` out to `ranks` ranks: the largest first (ties in the given order), each to the
 * rank with the fewest bytes so far (the lowest such rank); each rank's files in the given order.
 * @category constructors
 */
export const assign = (files: ReadonlyArray<Checkpoint.BinToCheck>, ranks: number): Array<Array<Checkpoint.BinToCheck>> => {
  const load = new Array<number>(ranks).fill(0)
  const owner = new Array<number>(files.length)
  const order = files.map((_, i) => i).sort((a, b) => (files[b] as Checkpoint.BinToCheck).bytes - (files[a] as Checkpoint.BinToCheck).bytes || a - b)
  for (const i of order) {
    let best = 0
    for (let r = 1; r < ranks; r++) if ((load[r] as number) < (load[best] as number)) best = r
    owner[i] = best
    load[best] = (load[best] as number) + (files[i] as Checkpoint.BinToCheck).bytes
  }
  return Array.from({ length: ranks }, (_, r) => files.filter((_, i) => owner[i] === r))
}

/** Hashes one file against its recorded checksum. */
const hash = (f: Checkpoint.BinToCheck): FileResult => ({ file: f.file, ...RankFiles.hashAgainst(f.file, f.checksum) })

/**
 * The rank program: hashes this rank's files.
 * @category constructors
 */
export const program = (rank: number, args: unknown) => Effect.sync(() => ((args as CheckArgs).byRank[rank] ?? []).map(hash))

/**
 * Checks the rank files of the checkpoint `dir` loads that this isolate has not checked, on the
 * `world` ranks of the backend in context (see the header): afterwards every one is in
 * CheckpointVerified, or the first damaged one (in rank order) is a ConfigError naming it.
 * @category constructors
 */
export const onRanks = (dir: string, world: number): Effect.Effect<void, ConfigError.ConfigError | RankFailed, Backend.Backend> =>
  Effect.gen(function* () {
    const files = Checkpoint.binsToCheck(dir)
    if (files.length === 0) return
    const backend = yield* Backend.Backend
    const alone = world === 1 || files.length === 1 || backend.name.startsWith("local")
    const byRank = assign(files, alone ? 1 : world)
    const results: ReadonlyArray<ReadonlyArray<FileResult>> = alone
      ? [files.map(hash)]
      : yield* backend
          .run({ world, program: RankProgram.make(import.meta.url, "program", { byRank } satisfies CheckArgs) })
          .pipe(Effect.map((all) => all as ReadonlyArray<ReadonlyArray<FileResult>>))
    // Every match counts as checked, then the first damaged file in rank order is refused.
    const found = new Map(results.flat().map((r) => [r.file, r]))
    for (const r of found.values()) if ("key" in r) CheckpointVerified.add(r.key)
    for (const f of files) {
      const r = found.get(f.file)
      if (r !== undefined && "actual" in r) return yield* Effect.fail(RankFiles.mismatch(dir, path.dirname(f.file), path.basename(f.file), r.actual, f.checksum))
    }
  })

/**
 * The step a checkpoint resumes at; a missing, damaged or other run's checkpoint is the user's
 * error. Its rank files are hashed by the job's ranks together (onRanks).
 * @category constructors
 */
export const resumedStep = (
  dir: string,
  setup: CheckpointIdentity.RunIdentity & { readonly parallel: { readonly world: number } },
): Effect.Effect<number, ConfigError.ConfigError | RankFailed, Backend.Backend> =>
  Effect.suspend(() => {
    try {
      const { step } = Checkpoint.manifestFor(dir, setup, false)
      return Effect.as(onRanks(dir, setup.parallel.world), step)
    } catch (error) {
      return ConfigError.isConfigError(error) ? Effect.fail(error) : Effect.die(error)
    }
  })
