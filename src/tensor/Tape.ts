/**
 * Tape: reverse-mode autograd for one rank.
 *
 * Ops append a node (inputs, output, backward rule) while the tape records. Because nodes are
 * appended in execution order, walking them backwards is a valid reverse topological order, so
 * `backward` needs no graph search. One tape per rank: ranks that share a process never share
 * gradients by accident. Backward rules run with recording off (no higher-order gradients).
 *
 * Leaves that require grad accumulate into `.grad` across backward passes (gradient
 * accumulation over micro-batches); call `zeroGrad` between optimizer steps.
 */
import * as Effect from "effect/Effect"
import * as Tensor from "./Tensor.js"
import * as TensorError from "./TensorError.js"

/**
 * A recorded op: how to turn the gradient of its output into gradients of its inputs.
 * `backward` returns one entry per input (undefined where an input needs no gradient).
 * @category models
 */
export interface Node {
  readonly op: string
  readonly inputs: ReadonlyArray<Tensor.Tensor>
  readonly output: Tensor.Tensor
  readonly backward: (gradOutput: Tensor.Tensor) => ReadonlyArray<Tensor.Tensor | undefined>
  /**
   * An effectful backward (collectives: the adjoint of an allgather is a reduce-scatter, which
   * must meet the other ranks). A tape with such nodes needs `backwardEffect`.
   */
  readonly backwardEffect?: (gradOutput: Tensor.Tensor) => Effect.Effect<ReadonlyArray<Tensor.Tensor | undefined>, unknown>
}

/**
 * Options of a tape.
 * @category models
 */
export interface TapeOptions {
  /** A name for messages (e.g. `rank 3`). */
  readonly name?: string
  /** Check every op output for NaN/Inf and fail naming the op (costs one pass per op). */
  readonly guardNonFinite?: boolean
}

/**
 * Options of a backward pass.
 * @category models
 */
export interface BackwardOptions {
  /** The gradient of the loss (default: ones; needed when the loss is not a scalar). */
  readonly gradient?: Tensor.Tensor
  /** Keep the recorded nodes for another backward pass. */
  readonly retainGraph?: boolean
}

/**
 * The autograd tape of one rank.
 * @category models
 */
export class Tape {
  readonly name: string
  guardNonFinite: boolean
  #nodes: Array<Node> = []
  #pausedDepth = 0

  constructor(options: TapeOptions = {}) {
    this.name = options.name ?? "tape"
    this.guardNonFinite = options.guardNonFinite ?? false
  }

  /** Whether ops are being recorded now (not inside `noGrad`). */
  get recording(): boolean {
    return this.#pausedDepth === 0
  }

  /** The number of recorded nodes. */
  get length(): number {
    return this.#nodes.length
  }

  /** Runs `f` without recording: results of ops inside do not require grad. */
  noGrad<A>(f: () => A): A {
    this.#pausedDepth++
    try {
      return f()
    } finally {
      this.#pausedDepth--
    }
  }

  /** Appends a node (ops call this through `Autograd.result`). */
  record(node: Node): void {
    this.#nodes.push(node)
  }

  /** Drops every recorded node (the gradients already accumulated stay). */
  clear(): void {
    this.#nodes = []
  }

  /** A leaf on this tape that requires grad, sharing `t`'s storage. */
  parameter(t: Tensor.Tensor): Tensor.Tensor {
    return Tensor.fromStorage(t.data, t.shape, { device: t.device, tape: this, requiresGrad: true })
  }

  /** Resets the `.grad` of the given leaves. */
  zeroGrad(leaves: Iterable<Tensor.Tensor>): void {
    for (const t of leaves) t.grad = undefined
  }

  /**
   * Back-propagates from `loss` to every leaf that requires grad, accumulating into `.grad`.
   * Frees the recorded nodes afterwards unless `retainGraph`. Nodes with an effectful backward
   * (collectives) need `backwardEffect` instead.
   */
  backward(loss: Tensor.Tensor, options: BackwardOptions = {}): void {
    const pass = this.#begin(loss, options)
    this.noGrad(() => {
      for (let i = this.#nodes.length - 1; i >= 0; i--) {
        const node = this.#nodes[i] as Node
        const g = pass.take(node)
        if (g === undefined) continue
        if (node.backwardEffect !== undefined) {
          throw TensorError.shape(node.op, "has an effectful backward (a collective): run tape.backwardEffect(loss) instead")
        }
        pass.give(node, node.backward(g))
      }
    })
    if (!(options.retainGraph ?? false)) this.clear()
  }

  /**
   * The backward pass as an Effect: like `backward`, and runs the effectful backward of
   * collectives in reverse recording order, so every rank issues them in the same order.
   */
  backwardEffect(loss: Tensor.Tensor, options: BackwardOptions = {}): Effect.Effect<void, unknown> {
    return Effect.suspend(() => {
      const pass = this.#begin(loss, options)
      const nodes = this.#nodes
      const step = (i: number): Effect.Effect<void, unknown> => {
        for (; i >= 0; i--) {
          const node = nodes[i] as Node
          const g = pass.take(node)
          if (g === undefined) continue
          if (node.backwardEffect !== undefined) {
            const next = i - 1
            this.#pausedDepth++
            return node.backwardEffect(g).pipe(
              Effect.ensuring(Effect.sync(() => void this.#pausedDepth--)),
              Effect.flatMap((grads) =>
                Effect.suspend(() => {
                  this.noGrad(() => pass.give(node, grads))
                  return step(next)
                }),
              ),
            )
          }
          this.noGrad(() => pass.give(node, node.backward(g)))
        }
        if (!(options.retainGraph ?? false)) this.clear()
        return Effect.void
      }
      return step(nodes.length - 1)
    })
  }

  /** Starts a backward pass: checks the loss and seeds its gradient. */
  #begin(loss: Tensor.Tensor, options: BackwardOptions) {
    if (loss.tape !== this) throw TensorError.shape("backward", `the loss was not recorded on ${this.name}`)
    if (!loss.requiresGrad) throw TensorError.shape("backward", "the loss does not require grad (no recorded op leads to it from a parameter)")
    const seed = options.gradient ?? Tensor.full(loss.shape, 1, { dtype: loss.dtype })
    if (!sameShape(seed.shape, loss.shape)) {
      throw TensorError.shape("backward", `gradient ${TensorError.formatShape(seed.shape)} does not match loss ${TensorError.formatShape(loss.shape)}`)
    }
    if (options.gradient === undefined && loss.size !== 1) {
      throw TensorError.shape("backward", `the loss has shape ${TensorError.formatShape(loss.shape)}; pass a gradient or reduce it to one element`)
    }
    const grads = new Map<Tensor.Tensor, Tensor.Tensor>()
    grads.set(loss, seed)
    if (loss.isLeaf) accumulateLeaf(loss, seed)
    return {
      /** The gradient of a node's output, removed from the pass (each output is used once). */
      take: (node: Node): Tensor.Tensor | undefined => {
        const g = grads.get(node.output)
        if (g !== undefined) grads.delete(node.output)
        return g
      },
      /** Accumulates a node's input gradients. */
      give: (node: Node, inputGrads: ReadonlyArray<Tensor.Tensor | undefined>): void => {
        node.inputs.forEach((input, j) => {
          const gi = inputGrads[j]
          if (gi === undefined || !input.requiresGrad) return
          if (!sameShape(gi.shape, input.shape)) {
            throw TensorError.shape(node.op, `backward gave a gradient of shape ${TensorError.formatShape(gi.shape)} for an input of shape ${TensorError.formatShape(input.shape)}`)
          }
          if (input.isLeaf) {
            accumulateLeaf(input, gi)
          } else {
            const prev = grads.get(input)
            grads.set(input, prev === undefined ? gi : addInto(Tensor.detachCopy(prev), gi))
          }
        })
      },
    }
  }
}

/**
 * A new tape.
 * @category constructors
 */
export const make = (options: TapeOptions = {}): Tape => new Tape(options)

const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => a.length === b.length && a.every((d, i) => d === b[i])

/** acc += g elementwise (acc is owned by the caller). */
const addInto = (acc: Tensor.Tensor, g: Tensor.Tensor): Tensor.Tensor => {
  const a = acc.data
  const b = g.data
  for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) + (b[i] as number)
  return acc
}

const accumulateLeaf = (leaf: Tensor.Tensor, g: Tensor.Tensor): void => {
  leaf.grad = leaf.grad === undefined ? Tensor.detachCopy(g) : addInto(leaf.grad, g)
}
