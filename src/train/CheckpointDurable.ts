/**
 * CheckpointDurable: the file operations of a checkpoint save, each durable before the next
 * begins, and the crash points that let a test kill the process between any two of them.
 *
 * A file is written whole and fsynced; a file that replaces another (the manifest, the `latest`
 * pointer, the marker) is written beside it as NAME.tmp, fsynced, renamed over NAME, and its
 * directory fsynced, so that after a crash NAME holds either the old bytes or the new ones.
 *
 * Crash points: every operation first passes `point()`. With PLEAT_CRASH_AT=n in the
 * environment, the n-th point passed in this process (1-based) kills the process at once with
 * SIGKILL: no finalizer, no flush, as a power cut would leave the files (short of the page
 * cache). A test kills a child process at each point in turn and checks what loads.
 *
 * Failure hook (tests only): with PLEAT_SAVE_FAIL=TEXT in the environment, every operation
 * whose target path contains TEXT throws an ENOSPC error, as a full disk would, instead of
 * touching it. It is read at each operation, so a test sets it inside its own process; e.g.
 * `ckpt/step-00000004` fails the save of step 4 into ckpt (its fallback elsewhere still
 * works), `step-00000004` fails it everywhere, `ckpt/step-00000004/manifest` fails only the
 * publication. Used to test that a failed save never throws a run away (SaveFallback).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs"
import path from "node:path"
import * as PositionedRead from "./PositionedRead.js"

const crashAt = ((text) => (text === undefined || !/^\d+$/.test(text) ? undefined : Number(text)))(process.env.PLEAT_CRASH_AT)
let passed = 0

/**
 * One step of the save protocol, on `target`: the process dies here when PLEAT_CRASH_AT names
 * this step, and it throws when PLEAT_SAVE_FAIL names part of `target`.
 * @category constructors
 */
const point = (target: string): void => {
  passed++
  if (passed === crashAt) process.kill(process.pid, "SIGKILL")
  const failing = process.env.PLEAT_SAVE_FAIL
  if (failing !== undefined && failing !== "" && target.includes(failing)) {
    throw Object.assign(new Error(`ENOSPC: no space left on device (PLEAT_SAVE_FAIL), '${target}'`), { code: "ENOSPC" })
  }
}

/** Flushes a file or directory to the disk. */
const sync = (target: string): void => {
  const fd = openSync(target, "r")
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Flushes a directory's entries (names created, renamed or removed in it) to the disk.
 * @category constructors
 */
export const syncDirectory = (dir: string): void => {
  point(dir)
  sync(dir)
}

/**
 * Writes all of `data` at the file position of `fd`, at most `perCall` bytes a writeSync (Node
 * refuses a length past 2^31 - 1: PositionedRead.maxCallBytes; a shard may hold up to 4 GiB).
 * @category constructors
 */
export const writeAll = (fd: number, data: Uint8Array, perCall: number = PositionedRead.maxCallBytes): void => {
  for (let at = 0; at < data.byteLength; ) at += writeSync(fd, data, at, Math.min(data.byteLength - at, perCall))
}

/**
 * The bytes of `a` as views of at most `piece` bytes each, in order: a Uint8Array stops at 2^32
 * bytes ("Invalid typed array length"), where a Float32Array of a 5 GB tensor (an imported
 * embedding, whole) does not.
 * @category constructors
 */
export function* byteViews(a: ArrayBufferView, piece: number = PositionedRead.maxCallBytes): Generator<Uint8Array> {
  for (let at = 0; at < a.byteLength; at += piece) yield new Uint8Array(a.buffer, a.byteOffset + at, Math.min(piece, a.byteLength - at))
}

/**
 * Writes `bytes` to a new file and flushes it to the disk.
 * @category constructors
 */
export const writeFile = (file: string, bytes: Uint8Array | string): void => {
  point(file)
  const fd = openSync(file, "w")
  try {
    writeAll(fd, typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Writes `parts` back to back into a new file and flushes it to the disk (a large file written
 * from pieces, never copied into one buffer).
 * @category constructors
 */
export const writeFileParts = (file: string, parts: Iterable<Uint8Array>): void => {
  point(file)
  const fd = openSync(file, "w")
  try {
    for (const data of parts) writeAll(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Replaces `file` atomically and durably: NAME.tmp written and flushed, renamed over NAME, the
 * directory flushed.
 * @category constructors
 */
export const replaceFile = (file: string, bytes: Uint8Array | string): void => {
  const temporary = `${file}.tmp`
  writeFile(temporary, bytes)
  point(file)
  renameSync(temporary, file)
  syncDirectory(path.dirname(file))
}

/**
 * Creates a directory (and its missing parents), flushing the entry in its parent.
 * @category constructors
 */
export const makeDirectory = (dir: string): void => {
  point(dir)
  mkdirSync(dir, { recursive: true })
  syncDirectory(path.dirname(dir))
}

/** The name a directory takes while it is removed (a name no load looks at). */
const removing = (dir: string): string => path.join(path.dirname(dir), `.removing-${path.basename(dir)}`)

/**
 * Removes a directory and everything in it: first renamed out of sight in one step, so that a
 * crash midway never leaves a checkpoint with some of its files gone under its own name.
 * @category constructors
 */
export const removeDirectory = (dir: string): void => {
  point(dir)
  rmSync(removing(dir), { recursive: true, force: true })
  renameSync(dir, removing(dir))
  point(dir)
  rmSync(removing(dir), { recursive: true, force: true })
}
