/**
 * CheckpointVerified: the checkpoint files this isolate has found to match their checksums, each
 * by its path, inode, size, modification time and the checksum it matched. The ranks of a local
 * job load from the same files checked before any step (CheckpointCheck: by the driver, or by
 * the ranks of a job of its own, each file's key sent back to the driver), so a file is hashed
 * once a process; a file rewritten since differs in one of them and is hashed again. The ranks
 * of a threads job (isolates of their own) and of an MPI job (processes of their own) get the
 * driver's keys with the run (TrainProgram's `verified`), so they do not hash the checkpoint
 * again: a key matches only the same path, inode, size and modification time, that is the file
 * that was checked (on a shared file system); a copy of it at the same path on another machine
 * has another inode, and its ranks hash what they read.
 */
import { statSync } from "node:fs"

const verified = new Set<string>()

/**
 * The key of `file` now, matched against `checksum`, and its size.
 * @category constructors
 */
export const keyOf = (file: string, checksum: string): { readonly key: string; readonly size: number } => {
  const { size, mtimeMs, ino } = statSync(file)
  return { key: `${file}\0${ino}\0${size}\0${mtimeMs}\0${checksum}`, size }
}

/**
 * Whether a file of this key was found to match.
 * @category guards
 */
export const has = (key: string): boolean => verified.has(key)

/**
 * Records a file found to match.
 * @category mutations
 */
export const add = (key: string): void => void verified.add(key)

/**
 * Every key this isolate holds (to hand to the isolates of a threads job).
 * @category getters
 */
export const keys = (): ReadonlyArray<string> => [...verified]

/**
 * Takes the keys another isolate of this process found (`keys`): those files are not hashed
 * again while unchanged.
 * @category mutations
 */
export const trust = (found: ReadonlyArray<string>): void => {
  for (const key of found) verified.add(key)
}
