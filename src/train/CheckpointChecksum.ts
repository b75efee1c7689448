/**
 * CheckpointChecksum: a hash of a shard file's bytes, recorded in the manifest when the file is
 * written and compared when it is loaded, so that a flipped byte is found and the file named
 * instead of training on garbage.
 *
 * Written: SHA-256, recorded as "sha256:" and 64 hex digits (Node's crypto: 1.5 GiB/s on this
 * machine's SHA instructions, so a resume's check costs little beside reading the file).
 * Checkpoints written before recorded FNV-1a 64 as 16 hex digits, which still load: a recorded
 * checksum names its algorithm by its form. FNV-1a: for each byte, h ^= byte, then h *= 2^40 +
 * 0x1b3 (mod 2^64), the product done on two 32-bit halves in plain numbers (every intermediate
 * stays below 2^53, so exact); 60 MiB/s in JavaScript, which made a resume of a large checkpoint
 * spend minutes hashing.
 */
import { createHash } from "node:crypto"
import { closeSync, openSync, readSync } from "node:fs"
import * as PositionedRead from "./PositionedRead.js"

/**
 * The hashes a manifest may record.
 * @category models
 */
export type Algorithm = "sha256" | "fnv1a64"

const sha256Prefix = "sha256:"

/**
 * The algorithm of a recorded checksum, from its form: "sha256:..." or 16 hex digits (FNV-1a 64).
 * @category getters
 */
export const algorithmOf = (recorded: string): Algorithm => (recorded.startsWith(sha256Prefix) ? "sha256" : "fnv1a64")

/**
 * A hash fed piece by piece: `update` with each piece of a file in order, then `digest` gives
 * what `of` gives of the pieces back to back (a file written or read in pieces is hashed
 * without being copied into one buffer).
 * @category models
 */
export interface Hasher {
  readonly update: (bytes: Uint8Array) => void
  readonly digest: () => string
}

const two32 = 4294967296
const primeLow = 0x1b3

/** FNV-1a 64, as checkpoints written before SHA-256 record it. */
const fnv1a64 = (): Hasher => {
  // Offset basis 0xcbf29ce484222325.
  let hi = 0xcbf29ce4
  let lo = 0x84222325
  return {
    update: (bytes) => {
      // The halves in locals for the loop (a closure's variables are slower to touch).
      let h = hi
      let l = lo
      for (let i = 0; i < bytes.length; i++) {
        const x = (l ^ (bytes[i] as number)) >>> 0
        // h * (2^40 + 0x1b3): the low half times 0x1b3 carries into the high half, and h << 40
        // adds the low half's bottom 24 bits into the high half's top 24.
        const low = x * primeLow
        const carry = Math.floor(low / two32)
        l = low >>> 0
        h = (h * primeLow + carry + ((x << 8) >>> 0)) >>> 0
      }
      hi = h
      lo = l
    },
    digest: () => hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0"),
  }
}

/**
 * SHA-256, recorded with its prefix. Node's hash refuses more than 2^31 - 1 bytes an update ("data
 * is too long") and a part of a checkpoint may hold up to 4 GiB, so an update goes in pieces of
 * PositionedRead.maxCallBytes: the digest of the pieces in order is the digest of the whole.
 */
const sha256 = (): Hasher => {
  const h = createHash("sha256")
  const piece = PositionedRead.maxCallBytes
  return {
    update: (bytes) => {
      for (let at = 0; at < bytes.byteLength; at += piece) h.update(bytes.subarray(at, at + piece))
    },
    digest: () => `${sha256Prefix}${h.digest("hex")}`,
  }
}

/**
 * A fresh hasher (SHA-256 unless asked for the FNV-1a 64 of older checkpoints).
 * @category constructors
 */
export const make = (algorithm: Algorithm = "sha256"): Hasher => (algorithm === "sha256" ? sha256() : fnv1a64())

/**
 * The checksum of `bytes`, as a manifest records it.
 * @category constructors
 */
export const of = (bytes: Uint8Array, algorithm: Algorithm = "sha256"): string => {
  const h = make(algorithm)
  h.update(bytes)
  return h.digest()
}

/** The piece of a file read at a time by `piecesOf`. */
const pieceBytes = 1 << 24

/**
 * The bytes of the file `file` in pieces of 16 MiB, in order; each piece is valid until the next
 * is asked for (one buffer serves them all).
 * @category constructors
 */
export function* piecesOf(file: string): Generator<Uint8Array> {
  const fd = openSync(file, "r")
  try {
    const piece = new Uint8Array(pieceBytes)
    for (;;) {
      const n = readSync(fd, piece, 0, pieceBytes, null)
      if (n === 0) return
      yield n === pieceBytes ? piece : piece.subarray(0, n)
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * The checksum of the file `file` and its size in bytes, read a piece at a time (a checkpoint's
 * rank file is checked without holding it in memory).
 * @category constructors
 */
export const ofFile = (file: string, algorithm: Algorithm = "sha256"): { readonly checksum: string; readonly bytes: number } => {
  const h = make(algorithm)
  let bytes = 0
  for (const piece of piecesOf(file)) {
    h.update(piece)
    bytes += piece.byteLength
  }
  return { checksum: h.digest(), bytes }
}
