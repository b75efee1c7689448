/**
 * TensorError: what goes wrong in tensor code, named by op.
 *
 * Shape errors name the op, both shapes and the dims that disagree, so a user sees at once which
 * layer got which input. Non-finite errors (from the optional guard) name the op whose output
 * first held a NaN or Inf. Both are plain tagged errors: tensor code is synchronous.
 */
import * as Data from "effect/Data"

/**
 * A tensor op refused its inputs.
 * @category errors
 */
export class ShapeError extends Data.TaggedError("ShapeError")<{
  readonly op: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.op}: ${this.detail}`
  }
}

/**
 * An op produced a NaN or an infinity while the non-finite guard was on.
 * @category errors
 */
export class NonFiniteError extends Data.TaggedError("NonFiniteError")<{
  readonly op: string
  readonly index: number
  readonly value: number
  readonly shape: ReadonlyArray<number>
}> {
  override get message(): string {
    return `${this.op}: produced ${this.value} at flat index ${this.index} of an output of shape [${this.shape.join(", ")}] (the first non-finite value of this step)`
  }
}

/**
 * Formats a shape for messages: `[2, 3]`.
 * @category mapping
 */
export const formatShape = (shape: ReadonlyArray<number>): string => `[${shape.join(", ")}]`

/**
 * Raises a ShapeError for `op`.
 * @category constructors
 */
export const shape = (op: string, detail: string): ShapeError => new ShapeError({ op, detail })
