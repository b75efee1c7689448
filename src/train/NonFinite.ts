/**
 * NonFinite: training stops at the first non-finite number instead of training on it.
 *
 * Each step, before its gradients are synchronised (which would spread a NaN to every replica
 * and hide where it came from), a rank checks its own loss share and then its gradients; the
 * first non-finite one fails the rank with a Diverged error naming it. The job reports the
 * rank and the step (RankFailed). After the synchronisation, a non-finite global gradient norm
 * that no rank's own gradients explain (the reduction overflowed) stops every rank the same way.
 */
import { sumSquares, sumSquaresEach } from "../tensor/kernels/SumSquares.js"
import * as Data from "effect/Data"
import type * as RankParams from "./RankParams.js"

/**
 * A non-finite loss or gradient: what it is, in words.
 * @category errors
 */
export class Diverged extends Data.TaggedError("Diverged")<{ readonly what: string }> {
  override get message(): string {
    return this.what
  }
}

const show = (x: number): string => (Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity")

/**
 * Where a rank's gradients are read: each shard's sum of squares (a non-finite one means a
 * non-finite element) and its values (read only to name that element).
 * @category models
 */
export interface GradientSource {
  readonly squares: (h: RankParams.Held) => number
  /** Every shard's `squares` in one call, where the source can spread them over threads. */
  readonly squaresEach?: (held: ReadonlyArray<RankParams.Held>) => ReadonlyArray<number>
  readonly values: (h: RankParams.Held) => ArrayLike<number>
}

/**
 * The host's gradient accumulators. Their sums of squares are taken together (sumSquaresEach:
 * the shards over the kernels' pool, each sum the same bits as alone): on one rank of the
 * realistic MoE shape one thread took ~21 ms a step over them while the pool's other idled.
 * @category constructors
 */
export const onHost: GradientSource = { squares: (h) => sumSquares(h.grad), squaresEach: (held) => sumSquaresEach(held.map((h) => h.grad)), values: (h) => h.grad }

/**
 * The host's gradient accumulators, each sum of squares also kept in `kept`: where nothing
 * changes the gradients between the check and the norm (no sync crosses ranks), the norm reads
 * them there instead of a second pass over every gradient (~25 ms a step at the realistic MoE
 * shape's 80M parameters; the same bits).
 * @category constructors
 */
export const keepingSquares = (kept: Map<RankParams.Held, number>): GradientSource => ({
  squares: (h) => {
    const s = sumSquares(h.grad)
    kept.set(h, s)
    return s
  },
  squaresEach: (held) => {
    const sums = sumSquaresEach(held.map((h) => h.grad))
    held.forEach((h, i) => kept.set(h, sums[i] as number))
    return sums
  },
  values: (h) => h.grad,
})

/**
 * What is non-finite on this rank after its backward (its loss share first, then the first
 * gradient in parameter order), or undefined when all is finite.
 * @category combinators
 */
export const find = (lossShare: number, params: ReadonlyMap<string, RankParams.Held>, gradients: GradientSource = onHost): Diverged | undefined => {
  if (!Number.isFinite(lossShare)) return new Diverged({ what: `the rank's loss share is ${show(lossShare)}` })
  const held = [...params.values()]
  const sums = gradients.squaresEach?.(held) ?? held.map(gradients.squares)
  for (const [i, h] of held.entries()) {
    // A finite sum of squares means every element is finite (one native pass); else find it.
    if (Number.isFinite(sums[i] as number)) continue
    const g = gradients.values(h)
    for (let i = 0; i < g.length; i++) {
      const x = g[i] as number
      // x - x is NaN exactly when x is NaN or infinite: one test per element.
      if (x - x !== 0) return new Diverged({ what: `gradient of ${h.spec.name} is ${show(x)} after the backward` })
    }
  }
  return undefined
}

/**
 * The failure of a non-finite global gradient norm that no rank's gradient explains.
 * @category constructors
 */
export const ofNorm = (gradNorm: number): Diverged =>
  new Diverged({ what: `the global gradient norm is ${show(gradNorm)} after the gradient sync, though every rank's gradients were finite (the reduction overflowed)` })
