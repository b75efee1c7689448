/**
 * Divisors: the divisors of a size, in increasing order: the degrees a world or a dimension can
 * be split into (trial division up to the square root, remembered: searches ask for the same
 * sizes many times).
 */

const known = new Map<number, ReadonlyArray<number>>()

/**
 * The divisors of the positive integer n, increasing.
 * @category mapping
 */
export const of = (n: number): ReadonlyArray<number> => {
  const cached = known.get(n)
  if (cached !== undefined) return cached
  const low: Array<number> = []
  const high: Array<number> = []
  for (let d = 1; d * d <= n; d++)
    if (n % d === 0) {
      low.push(d)
      if (d * d !== n) high.push(n / d)
    }
  const all = [...low, ...high.reverse()]
  known.set(n, all)
  return all
}
