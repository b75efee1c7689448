/**
 * CheckpointChecksum: a 64-bit FNV-1a hash of a shard file's bytes, recorded in the manifest
 * when the file is written and compared when it is loaded, so that a flipped byte is found
 * and the file named instead of training on garbage.
 *
 * FNV-1a: for each byte, h ^= byte, then h *= 2^40 + 0x1b3 (mod 2^64). The 64-bit product is
 * done on two 32-bit halves in plain numbers (every intermediate stays below 2^53, so exact).
 */

const two32 = 4294967296
const primeLow = 0x1b3

/**
 * The FNV-1a 64-bit hash of `bytes`, as 16 hex digits.
 * @category constructors
 */
export const of = (bytes: Uint8Array): string => {
  // Offset basis 0xcbf29ce484222325.
  let hi = 0xcbf29ce4
  let lo = 0x84222325
  for (let i = 0; i < bytes.length; i++) {
    const x = (lo ^ (bytes[i] as number)) >>> 0
    // h * (2^40 + 0x1b3): the low half times 0x1b3 carries into the high half, and h << 40
    // adds the low half's bottom 24 bits into the high half's top 24.
    const low = x * primeLow
    const carry = Math.floor(low / two32)
    lo = low >>> 0
    hi = (hi * primeLow + carry + ((x << 8) >>> 0)) >>> 0
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0")
}
