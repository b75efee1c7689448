/**
 * DistributedOptimizerPieces: a contiguous run of a shard's elements (in row-major order) as
 * rectangular slices, so that what the distributed optimizer owns of a parameter can be written
 * and read as ordinary slices (checkpoints, `pleat verify`).
 *
 * A run [from, to) of a tensor of shape S splits into at most 2 * rank(S) - 1 rectangles, each
 * of them a fixed index in the leading dims, a range in one dim and every index of the dims
 * after it: so each rectangle is itself a contiguous run of the tensor, laid out in the same
 * order, and the rectangles follow one another.
 */

/**
 * One rectangle of a run: its ranges per dim, and the run of flat indices it is.
 * @category models
 */
export interface Piece {
  readonly ranges: ReadonlyArray<[number, number]>
  readonly from: number
  readonly to: number
}

/**
 * The rectangles of the run [from, to) of a tensor of `shape`, in order (none when empty).
 * @category mapping
 */
export const ofRun = (shape: ReadonlyArray<number>, from: number, to: number): Array<Piece> => {
  const out: Array<Piece> = []
  const all = (dim: number): Array<[number, number]> => shape.slice(dim).map((d): [number, number] => [0, d])
  // [lo, hi) counts within the sub-tensor of dims `dim`.. at flat offset `base`, under `prefix`.
  const split = (prefix: ReadonlyArray<[number, number]>, dim: number, base: number, lo: number, hi: number): void => {
    if (lo >= hi) return
    const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1)
    const first = Math.floor(lo / inner)
    const last = Math.floor(hi / inner)
    const row = (r: number): Array<[number, number]> => [...prefix, [r, r + 1]]
    if (lo % inner === 0 && hi % inner === 0) {
      out.push({ ranges: [...prefix, [first, last], ...all(dim + 1)], from: base + lo, to: base + hi })
      return
    }
    if (first === last) {
      split(row(first), dim + 1, base + first * inner, lo - first * inner, hi - first * inner)
      return
    }
    let whole = first
    if (lo % inner !== 0) {
      split(row(first), dim + 1, base + first * inner, lo - first * inner, inner)
      whole = first + 1
    }
    if (last > whole) out.push({ ranges: [...prefix, [whole, last], ...all(dim + 1)], from: base + whole * inner, to: base + last * inner })
    if (hi % inner !== 0) split(row(last), dim + 1, base + last * inner, 0, hi - last * inner)
  }
  split([], 0, 0, from, to)
  return out
}

/**
 * A piece of a shard in the parameter's global coordinates (the shard's slice starts added).
 * @category mapping
 */
export const globalRanges = (shardSlice: ReadonlyArray<[number, number]>, piece: Piece): Array<[number, number]> =>
  piece.ranges.map(([a, b], i): [number, number] => {
    const start = (shardSlice[i] as [number, number])[0]
    return [start + a, start + b]
  })
