/**
 * Tape: reverse-mode autograd for one rank.
 *
 * Ops append a node (inputs, output, backward rule) while the tape records. Because nodes are
 * appended in execution order, walking them backwards is a valid reverse topological order, so
 * `backward` needs no graph search. One tape per rank: ranks that share a process never share
 * gradients by accident. Backward rules run with recording off (no higher-order gradients).
 *
 * Leaves that require grad accumulate into `.grad` across backward passes (gradient
 * accumulation over micro-batches); call `zeroGrad` between optimizer steps. A leaf made with an
 * accumulator (`parameter(t, accumulator)`) adds its gradients into that storage instead, and
 * weight-gradient products add into it directly (GradAccumulator.ts).
 *
 * Precision: a tape made with `precision: "bf16"` rounds the float32 output of every op it
 * records to a bfloat16 value (Autograd.ts; the storage stays float32), except inside
 * `fullPrecision` (the router and its losses run in fp32, as Megatron's moe_router_dtype),
 * except scalar outputs (the loss terms and their sums, which Megatron computes in fp32) and
 * except during a backward pass: gradients stay fp32 (a bf16 product's backward products take
 * the incoming gradient rounded to bf16, kernels/Bf16Matmul.ts). Forward work under `noGrad` rounds too,
 * so a recomputed block's first run (unrecorded) and its replay (recorded apart) agree.
 */
import * as Effect from "effect/Effect"
import * as BackwardPass from "./BackwardPass.js"
import type { Pass } from "./BackwardPass.js"
import * as DType from "./DType.js"
import * as GradAccumulator from "./GradAccumulator.js"
import { hostValues } from "./ops/Transfer.js"
import * as StorageRecycler from "./StorageRecycler.js"
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
  /** The rule reads its gradient on the host (the router, the losses): `backwardEffect` downloads it first, without blocking. */
  readonly readsGradientOnHost?: boolean
  /**
   * The output is the input's storage and nothing else took either: a collective of a group of
   * one (ActivationRelease need not spare its input from the recycler).
   */
  readonly passThrough?: boolean
  /**
   * A collective whose transport keeps neither its input nor its output once it completed (its
   * communicator's `privateStorage`): the output is this rank's own storage, and the gradient its
   * effectful rule consumed may be reused once nothing else holds it. ActivationRelease and the
   * backward pass treat such a node as any other op.
   */
  readonly privateStorage?: boolean
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
  /** "bf16": recorded op outputs are rounded to bfloat16 values (default "fp32": never). */
  readonly precision?: "fp32" | "bf16"
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
  readonly precision: "fp32" | "bf16"
  #nodes: Array<Node> = []
  #pausedDepth = 0
  #fullPrecisionDepth = 0
  #backwardDepth = 0

  constructor(options: TapeOptions = {}) {
    this.name = options.name ?? "tape"
    this.guardNonFinite = options.guardNonFinite ?? false
    this.precision = options.precision ?? "fp32"
  }

  /** Whether op outputs made now are rounded to bfloat16: bf16, not in fullPrecision, not in a backward pass. */
  get roundsToBf16(): boolean {
    return this.precision === "bf16" && this.#backwardDepth === 0 && this.#fullPrecisionDepth === 0
  }

  /** Runs `f` with op outputs kept in float32 (the fp32 region of a bf16 tape). */
  fullPrecision<A>(f: () => A): A {
    this.#fullPrecisionDepth++
    try {
      return f()
    } finally {
      this.#fullPrecisionDepth--
    }
  }

  /** `fullPrecision` for an Effect (a region with collectives). */
  fullPrecisionEffect<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      this.#fullPrecisionDepth++
      return effect.pipe(Effect.ensuring(Effect.sync(() => void this.#fullPrecisionDepth--)))
    })
  }

  /** Whether ops are being recorded now (not inside `noGrad`). */
  get recording(): boolean {
    return this.#pausedDepth === 0
  }

  /** The number of recorded nodes. */
  get length(): number {
    return this.#nodes.length
  }

  /** The nodes recorded so far (a backward that frees them leaves this list as it is). */
  recorded(): ReadonlyArray<Node> {
    return this.#nodes
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

  /**
   * A leaf on this tape that requires grad, sharing `t`'s storage; with `accumulator`, its
   * gradients are added into that storage (GradAccumulator) rather than kept in `.grad`.
   */
  parameter(t: Tensor.Tensor, accumulator?: GradAccumulator.Accumulator): Tensor.Tensor {
    const leaf = t.alias({ tape: this, requiresGrad: true })
    if (accumulator !== undefined) GradAccumulator.bind(leaf, accumulator)
    return leaf
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
    this.#walk(this.#nodes, this.#begin(loss, options))
    if (!(options.retainGraph ?? false)) this.clear()
  }

  /**
   * The backward pass as an Effect: like `backward`, and runs the effectful backward of
   * collectives in reverse recording order, so every rank issues them in the same order.
   */
  backwardEffect(loss: Tensor.Tensor, options: BackwardOptions = {}): Effect.Effect<void, unknown> {
    return Effect.suspend(() =>
      this.#walkEffect(this.#nodes, this.#begin(loss, options)).pipe(
        Effect.map(() => {
          if (!(options.retainGraph ?? false)) this.clear()
        }),
      ),
    )
  }

  /** Runs an Effect without recording (like `noGrad`). */
  noGradEffect<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      this.#pausedDepth++
      return effect.pipe(Effect.ensuring(Effect.sync(() => void this.#pausedDepth--)))
    })
  }

  /**
   * Runs `f` recording onto a node list of its own (recording even inside a backward pass, for
   * recompute), then restores the tape; gives f's result and the nodes it recorded.
   */
  recordApart<A>(f: () => A): { readonly value: A; readonly nodes: ReadonlyArray<Node> } {
    const saved = this.#enterApart()
    try {
      const value = f()
      return { value, nodes: this.#nodes }
    } finally {
      this.#leaveApart(saved)
    }
  }

  /** `recordApart` for an Effect (a recompute with collectives). */
  recordApartEffect<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<{ readonly value: A; readonly nodes: ReadonlyArray<Node> }, E, R> {
    return Effect.suspend(() => {
      const saved = this.#enterApart()
      const nodes = this.#nodes
      return effect.pipe(
        Effect.map((value) => ({ value, nodes })),
        Effect.ensuring(Effect.sync(() => this.#leaveApart(saved))),
      )
    })
  }

  /**
   * A backward pass over `nodes` only (from `recordApart`), from `root` with `gradient`: leaves
   * accumulate as in `backward`; a non-leaf input that none of the nodes made gets no gradient,
   * so it is refused (whatever recorded the nodes must take such tensors as its inputs).
   */
  backwardOver(nodes: ReadonlyArray<Node>, root: Tensor.Tensor, gradient: Tensor.Tensor): void {
    this.#walk(nodes, this.#beginOver(nodes, root, gradient))
  }

  /** `backwardOver` for nodes with effectful backwards. */
  backwardOverEffect(nodes: ReadonlyArray<Node>, root: Tensor.Tensor, gradient: Tensor.Tensor): Effect.Effect<void, unknown> {
    return Effect.suspend(() => this.#walkEffect(nodes, this.#beginOver(nodes, root, gradient)))
  }

  /**
   * Bytes of the tensors the recorded nodes hold (inputs and outputs that are not leaves, each
   * storage once): the activations this tape keeps alive for its backward.
   */
  savedBytes(): number {
    const seen = new Set<unknown>()
    let bytes = 0
    const count = (t: Tensor.Tensor) => {
      const values = t.values()
      if (t.isLeaf || seen.has(values)) return
      seen.add(values)
      bytes += t.size * DType.bytesPer(t.dtype)
    }
    for (const node of this.#nodes) {
      count(node.output)
      for (const input of node.inputs) count(input)
    }
    return bytes
  }

  #enterApart(): Apart {
    const saved = { nodes: this.#nodes, depth: this.#pausedDepth, backward: this.#backwardDepth, fullPrecision: this.#fullPrecisionDepth }
    this.#nodes = []
    this.#pausedDepth = 0
    // A replay is a forward: on a bf16 tape it rounds as the first run did.
    this.#backwardDepth = 0
    this.#fullPrecisionDepth = 0
    return saved
  }

  #leaveApart(saved: Apart): void {
    this.#nodes = saved.nodes
    this.#pausedDepth = saved.depth
    this.#backwardDepth = saved.backward
    this.#fullPrecisionDepth = saved.fullPrecision
  }

  /** Runs `f` as part of a backward pass: unrecorded, and never rounded to bf16. */
  #inBackward<A>(f: () => A): A {
    this.#backwardDepth++
    try {
      return this.noGrad(f)
    } finally {
      this.#backwardDepth--
    }
  }

  /** Walks `nodes` backwards, handing each node's output gradient to its rule. */
  #walk(nodes: ReadonlyArray<Node>, pass: Pass): void {
    this.#inBackward(() => {
      for (let i = nodes.length - 1; i >= 0; i--) {
        const node = nodes[i] as Node
        const g = pass.take(node)
        if (g === undefined) continue
        if (node.backwardEffect !== undefined) {
          throw TensorError.shape(node.op, "has an effectful backward (a collective): run tape.backwardEffect(loss) instead")
        }
        pass.runRule(node, g)
      }
    })
  }

  /** `#walk` as an Effect: effectful rules (collectives) in order; host readers get their gradient downloaded first. */
  #walkEffect(nodes: ReadonlyArray<Node>, pass: Pass): Effect.Effect<void, unknown> {
    const run = (node: Node, g: Tensor.Tensor): Effect.Effect<void, unknown> =>
      node.backwardEffect === undefined
        ? Effect.sync(() => this.noGrad(() => pass.runRule(node, g)))
        : Effect.suspend(() => {
            const since = StorageRecycler.serial()
            const rule = node.backwardEffect as NonNullable<Node["backwardEffect"]>
            return this.noGradEffect(rule(g)).pipe(Effect.flatMap((grads) => Effect.sync(() => this.noGrad(() => pass.giveEffect(node, g, grads, since)))))
          })
    const step = (i: number): Effect.Effect<void, unknown> => {
      for (; i >= 0; i--) {
        const node = nodes[i] as Node
        const g = pass.take(node)
        if (g === undefined) continue
        const next = i - 1
        if (node.readsGradientOnHost === true && g.hostStorage === undefined) {
          return Effect.flatMap(hostValues(g), () => Effect.flatMap(run(node, g), () => step(next)))
        }
        if (node.backwardEffect !== undefined) return Effect.flatMap(run(node, g), () => step(next))
        this.noGrad(() => pass.runRule(node, g))
      }
      return Effect.void
    }
    return Effect.suspend(() => {
      this.#backwardDepth++
      return step(nodes.length - 1).pipe(Effect.ensuring(Effect.sync(() => void this.#backwardDepth--)))
    })
  }

  /** Starts a pass over `nodes` from `root`, refusing inputs that would lose their gradient. */
  #beginOver(nodes: ReadonlyArray<Node>, root: Tensor.Tensor, gradient: Tensor.Tensor): Pass {
    const made = new Set<Tensor.Tensor>(nodes.map((n) => n.output))
    for (const node of nodes)
      for (const input of node.inputs)
        if (input.requiresGrad && !input.isLeaf && !made.has(input))
          throw TensorError.shape(node.op, "uses a tensor that requires grad but was made outside the recomputed function: pass it as an input")
    return this.#begin(root, { gradient })
  }

  /** Starts a backward pass: checks the loss and seeds its gradient. */
  #begin(loss: Tensor.Tensor, options: BackwardOptions): Pass {
    if (loss.tape !== this) throw TensorError.shape("backward", `the loss was not recorded on ${this.name}`)
    if (!loss.requiresGrad) throw TensorError.shape("backward", "the loss does not require grad (no recorded op leads to it from a parameter)")
    const seed = options.gradient ?? Tensor.full(loss.shape, 1, { dtype: loss.dtype, device: loss.device })
    if (!Tensor.sameShape(seed.shape, loss.shape)) {
      throw TensorError.shape("backward", `gradient ${TensorError.formatShape(seed.shape)} does not match loss ${TensorError.formatShape(loss.shape)}`)
    }
    if (options.gradient === undefined && loss.size !== 1) {
      throw TensorError.shape("backward", `the loss has shape ${TensorError.formatShape(loss.shape)}; pass a gradient or reduce it to one element`)
    }
    return BackwardPass.make(loss, seed)
  }
}

/** What a replay recorded apart sets aside and restores. */
interface Apart {
  readonly nodes: Array<Node>
  readonly depth: number
  readonly backward: number
  readonly fullPrecision: number
}

/**
 * A new tape.
 * @category constructors
 */
export const make = (options: TapeOptions = {}): Tape => new Tape(options)
