/**
 * WindowedFile: little-endian integers at any offset of a file of any size, read through one
 * window of the file kept in memory (refilled around the offset asked for when it falls outside).
 * For indexes walked mostly in order (a Megatron-LM dataset's .idx: its document and sequence
 * tables), where reading the whole file at once stops at 2 GiB (readFileSync) and keeps it all
 * in memory.
 */
import { closeSync, fstatSync, openSync } from "node:fs"
import * as PositionedRead from "./PositionedRead.js"

/**
 * An open file read through a window.
 * @category models
 */
export interface WindowedFile {
  /** The file's size in bytes. */
  readonly size: number
  readonly int32: (at: number) => number
  readonly uint64: (at: number) => number
  readonly int64: (at: number) => number
  readonly close: () => void
}

/**
 * Opens `file` with a window of `windowBytes` (at least 8).
 * @category constructors
 */
export const open = (file: string, windowBytes: number = 1 << 24): WindowedFile => {
  const fd = openSync(file, "r")
  const size = fstatSync(fd).size
  const window = Buffer.alloc(Math.max(8, Math.min(windowBytes, size)))
  let from = 0
  let filled = 0
  // The window's bytes from `at` on, refilled from `at` when they do not hold `bytes` of them.
  const place = (at: number, bytes: number): number => {
    if (at < from || at + bytes > from + filled) {
      from = at
      filled = PositionedRead.readFully(fd, window, 0, Math.min(window.length, size - at), at)
      if (filled < bytes) throw new RangeError(`${file}: ${bytes} bytes at ${at} run past its end (${size} bytes)`)
    }
    return at - from
  }
  return {
    size,
    int32: (at) => window.readInt32LE(place(at, 4)),
    uint64: (at) => Number(window.readBigUInt64LE(place(at, 8))),
    int64: (at) => Number(window.readBigInt64LE(place(at, 8))),
    close: () => closeSync(fd),
  }
}
