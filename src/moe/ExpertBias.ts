/**
 * ExpertBias: aux-loss-free load balancing (semantics.md 2.1.5).
 *
 * The bias [E] only changes which experts are selected (sigmoid scores); the probs never see
 * it. Every forward adds the final map's column sums to this rank's counts; once per global
 * batch the counts are summed over tp-dp-cp and each expert's bias moves by `rate` toward
 * balance: bias_e += rate * sign(mean(count) - count_e) (sign(0) = 0). Then the counts reset.
 * The state is a value: `update` returns a new one; callers keep it in the rank actor.
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import type { Group } from "../comm/Group.js"
import * as Tensor from "../tensor/Tensor.js"

/**
 * The bias and the counts since the last update.
 * @category models
 */
export interface ExpertBias {
  readonly bias: ReadonlyArray<number>
  readonly counts: ReadonlyArray<number>
}

/**
 * A layer's state with `bias` and nothing counted yet (a fresh global batch).
 * @category constructors
 */
export const withBias = (bias: ReadonlyArray<number>): ExpertBias => ({ bias: [...bias], counts: new Array<number>(bias.length).fill(0) })

/**
 * The bias step from counts already summed over tp-dp-cp.
 * @category mapping
 */
const step = (bias: ReadonlyArray<number>, counts: ReadonlyArray<number>, rate: number): Array<number> => {
  const mean = counts.reduce((a, b) => a + b, 0) / Math.max(1, counts.length)
  return bias.map((b, e) => b + rate * Math.sign(mean - (counts[e] as number)))
}

/**
 * Once per global batch: sums the counts over `tpDpCp`, moves the bias, resets the counts.
 * Every member of the group computes the same new bias.
 * @category combinators
 */
export const update = (state: ExpertBias, tpDpCp: Group, rate = 1e-3) =>
  Effect.map(
    Comm.allReduce(tpDpCp, Tensor.fromArray(state.counts, [1, state.counts.length], { dtype: "float64" })),
    (summed): ExpertBias => withBias(step(state.bias, Array.from(summed.data), rate)),
  )
