/**
 * Query first keys for the attention properties: the starts of documents packed into one
 * sequence (Megatron's --reset-attention-mask), with the edge cases a kernel's mask must get
 * right. Per sequence (one shared by the batch, or one per batch entry), walking the queries in
 * order: the running document start only rises (nondecreasing), a cut moves it to somewhere in
 * [start, the query's position] (or, in half the cases, cuts only next to multiples of 8, each
 * starting a document at its query, so block edges meet document starts), and each query's first
 * key is the start, at most its position.
 * The first document starts at or below the lowest positions (sometimes far below: -2^31, no bound
 * at all); about one query in ten gets a first key above every key (sometimes 2^31 - 1), so its
 * row sees nothing. With the default positions (0..S-1, sorted) these are exactly documents.
 */

/** Draws in [0, 1). */
export type Draw = () => number

/** How a case's first keys are laid out: none, Sq shared by the batch, or B * Sq. */
export type FirstKeysMode = "none" | "shared" | "batch"

/**
 * First keys for `seqs` sequences (1 shared, or B) of `sq` queries; position(s, i) is query i's
 * position in sequence s, above(s) a position above every key of sequence s.
 */
export const documentStarts = (draw: Draw, seqs: number, sq: number, position: (s: number, i: number) => number, above: (s: number) => number): Int32Array => {
  const firsts = new Int32Array(seqs * sq)
  // Aligned: documents start at the queries next to multiples of 8 (p % 8 = 7 or 0), so that
  // block edges (the CPU's 8 and 16 keys, the device's 64) meet document starts.
  const aligned = draw() < 0.5
  const cutRate = aligned ? 0.6 : draw() * 0.4
  for (let s = 0; s < seqs; s++) {
    let start = draw() < 0.1 ? -2147483648 : Math.floor(draw() * 6) - 4
    for (let i = 0; i < sq; i++) {
      const p = position(s, i)
      const cut = (!aligned || (p & 7) === 7 || (p & 7) === 0) && draw() < cutRate
      if (cut && p >= start) start = aligned ? p : start + Math.floor(draw() * (p - start + 1))
      const empty = draw() < 0.1
      firsts[s * sq + i] = empty ? (draw() < 0.3 ? 2147483647 : above(s) + Math.floor(draw() * 3)) : Math.min(start, p)
    }
  }
  return firsts
}

/**
 * A case's first keys: undefined for "none"; else document starts over the query positions
 * (qpos, Sq or B * Sq entries, or undefined for 0..Sq-1) against the key positions (likewise).
 */
export const firstKeysOf = (
  draw: Draw,
  mode: FirstKeysMode,
  b: number,
  sq: number,
  sk: number,
  qpos: Int32Array | undefined,
  kpos: Int32Array | undefined,
): Int32Array | undefined => {
  if (mode === "none") return undefined
  const at = (p: Int32Array | undefined, s: number, n: number, i: number) => (p === undefined ? i : (p[p.length === n ? i : s * n + i] as number))
  // Above every key the sequence's queries meet: of every batch entry when shared.
  const above = (s: number) => {
    let top = -1
    for (let e = mode === "shared" ? 0 : s; e < (mode === "shared" ? b : s + 1); e++) for (let j = 0; j < sk; j++) top = Math.max(top, at(kpos, e, sk, j))
    return top + 1
  }
  return documentStarts(draw, mode === "shared" ? 1 : b, sq, (s, i) => at(qpos, s, sq, i), above)
}
