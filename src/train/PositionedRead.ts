/**
 * PositionedRead: `length` bytes of an open file from byte `at`, read until they are all in or the
 * file ends (one readSync may return fewer bytes than asked for). Token files, safetensors
 * tensors and checkpoint shards are all read this way.
 */
import { readSync } from "node:fs"

/**
 * Reads up to `length` bytes of `fd` from byte `at` into `into` at `offset`; returns how many it
 * read (fewer than `length` only where the file ends first).
 * @category constructors
 */
export const readFully = (fd: number, into: Uint8Array, offset: number, length: number, at: number): number => {
  let got = 0
  while (got < length) {
    const n = readSync(fd, into, offset + got, length - got, at + got)
    if (n === 0) break
    got += n
  }
  return got
}
