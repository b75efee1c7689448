/**
 * ContextParallel: how a sequence is cut over the cp group, load-balanced for causal attention.
 *
 * The sequence of length S is cut into 2*CP chunks of S/(2*CP) tokens; cp rank i holds chunks
 * i and 2*CP-1-i (an early and a late chunk, so every rank does the same amount of causal
 * attention work). Example, CP 2, S 8: chunks [0,1] [2,3] [4,5] [6,7]; rank 0 holds positions
 * 0,1,6,7 and rank 1 holds 2,3,4,5.
 *
 * Local tokens are rows in [B, S_local] order (batch-major, positions ascending within a
 * chunk pair as held). `positions` gives each local token's position in the full sequence,
 * which RoPE and the causal mask use, so a rank computes exactly what the whole sequence would.
 */
import * as ConfigError from "../errors/ConfigError.js"

/**
 * The two chunks cp rank `rank` holds, in the order it holds them.
 * @category mapping
 */
const chunksOf = (cp: number, rank: number): readonly [number, number] => [rank, 2 * cp - 1 - rank]

/**
 * Checks that a sequence splits over cp (and over tp under sequence parallelism), before any
 * work starts; the error names the field and the fix.
 * @category guards
 */
export const checkSequence = (seq: number, cp: number, tp: number, sequenceParallel: boolean, batch = 1): void => {
  if (cp > 1 && seq % (2 * cp) !== 0) {
    throw ConfigError.make(
      "seq",
      seq,
      `is not divisible by 2*cp = ${2 * cp} (context parallelism cuts it into 2*cp chunks)`,
      `use a sequence length that is a multiple of ${2 * cp}`,
    )
  }
  const local = (seq / cp) * batch
  if (sequenceParallel && local % tp !== 0) {
    throw ConfigError.make(
      "seq",
      seq,
      `gives ${local} local tokens, not divisible by tp = ${tp} under sequence parallelism`,
      `use a sequence length whose share per cp rank times the batch is a multiple of ${tp}, or turn sequence parallelism off`,
    )
  }
}

/**
 * The positions (in the full sequence) of cp rank `rank`'s tokens, in the order it holds them.
 * @category mapping
 */
export const positions = (seq: number, cp: number, rank: number): Int32Array => {
  if (cp === 1) return Int32Array.from({ length: seq }, (_, i) => i)
  const size = seq / (2 * cp)
  const out = new Int32Array(2 * size)
  chunksOf(cp, rank).forEach((chunk, c) => {
    for (let i = 0; i < size; i++) out[c * size + i] = chunk * size + i
  })
  return out
}

/**
 * Cp rank `rank`'s part of a sequence of per-position rows (row p = position p).
 * @category mapping
 */
export const shard = <A>(sequence: ReadonlyArray<A>, cp: number, rank: number): Array<A> => Array.from(positions(sequence.length, cp, rank), (p) => sequence[p] as A)

/**
 * The full sequence back from every cp rank's part (the inverse of `shard`).
 * @category mapping
 */
export const unshard = <A>(parts: ReadonlyArray<ReadonlyArray<A>>, seq: number): Array<A> => {
  const cp = parts.length
  const out = new Array<A>(seq)
  parts.forEach((part, rank) => {
    positions(seq, cp, rank).forEach((p, i) => {
      out[p] = part[i] as A
    })
  })
  return out
}
