/**
 * RowStats: the numerically stable row statistics shared by log-softmax and cross-entropy.
 *
 * For a row x: m = max_j x_j and l = log(sum_j exp(x_j - m)), in float64. Keeping m and l
 * apart (instead of m + l) keeps the digits that large logits would lose.
 */

/**
 * The max and the log-sum of shifted exponentials of `cols` values starting at `base`.
 * @category mapping
 */
export const maxAndLogSum = (xs: ArrayLike<number>, base: number, cols: number): readonly [number, number] => {
  let max = Number.NEGATIVE_INFINITY
  for (let j = 0; j < cols; j++) {
    const v = xs[base + j] as number
    if (v > max) max = v
  }
  let sum = 0
  for (let j = 0; j < cols; j++) sum += Math.exp((xs[base + j] as number) - max)
  return [max, Math.log(sum)]
}
