/**
 * PositionedRead: `length` bytes of an open file from byte `at`, read until they are all in or the
 * file ends (one readSync may return fewer bytes than asked for, and is asked for at most
 * `maxCallBytes`). Token files, safetensors tensors and checkpoint shards are all read this way.
 */
import { readSync } from "node:fs"

/**
 * The most bytes one readSync, writeSync or hash update is asked for: Node refuses a length past
 * 2^31 - 1 ("The value of "length" is out of range", "data is too long"), and a parameter shard,
 * an optimizer moment or a safetensors tensor may hold up to 4 GiB (a 152,064 x 4,096 float32
 * embedding is 2.3 GiB).
 * @category configuration
 */
export const maxCallBytes = 2 ** 30

/**
 * Reads up to `length` bytes of `fd` from byte `at` into `into` at `offset`; returns how many it
 * read (fewer than `length` only where the file ends first). At most `perCall` bytes a call.
 * @category constructors
 */
export const readFully = (fd: number, into: Uint8Array, offset: number, length: number, at: number, perCall: number = maxCallBytes): number => {
  let got = 0
  while (got < length) {
    const n = readSync(fd, into, offset + got, Math.min(length - got, perCall), at + got)
    if (n === 0) break
    got += n
  }
  return got
}
