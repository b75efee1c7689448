/**
 * ChunkRun: one (micro-batch, chunk) of a rank on its own tape: the forward through the model
 * chunk (Stage -> model/Mixtral) and the backward that the interpreter runs later.
 *
 * This rank's shards enter the tape as fresh leaves over the same storage, so an interleaved
 * schedule can keep several micro-batches in flight and run their backwards in any order;
 * each leaf is bound to its shard's gradient accumulator (GradAccumulator: the weight-gradient
 * products add into it inside the GEMM, as Megatron's gradient accumulation fusion, and the
 * other gradients as the backward reaches them; no per-micro-batch gradient tensor). The
 * received activation is a plain leaf: its gradient is what goes back to the previous stage.
 *
 * With `precision: "bf16"` the tape rounds activations to bfloat16 (Tape.ts) and each shard
 * enters as a leaf over a bf16 copy of the fp32 master (ops/Bf16.ts): the model computes on
 * bf16 weights, and the copy's fp32 gradient is added to the fp32 master gradient as the
 * shard's own leaf's would be (straight-through: the copy's leaf is bound to the master's
 * accumulator), then reduced and stepped in fp32.
 */
import * as Effect from "effect/Effect"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import type * as Mixtral from "../model/Mixtral.js"
import type * as Partition from "../pipeline/Partition.js"
import * as ActivationRelease from "../tensor/ActivationRelease.js"
import * as Autograd from "../tensor/Autograd.js"
import * as Device from "../tensor/Device.js"
import * as Place from "../tensor/device/Place.js"
import * as StableWeights from "../tensor/StableWeights.js"
import * as StorageRecycler from "../tensor/StorageRecycler.js"
import type * as GradAccumulator from "../tensor/GradAccumulator.js"
import { copyToBf16 } from "../tensor/ops/Bf16.js"
import { add } from "../tensor/ops/Elementwise.js"
import { to } from "../tensor/ops/Transfer.js"
import * as Tape from "../tensor/Tape.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as Data from "./Data.js"
import type * as Interpreter from "./Interpreter.js"
import type * as RankParams from "./RankParams.js"
import * as Stage from "./Stage.js"

/**
 * What a chunk run needs.
 * @category models
 */
export interface ChunkInput {
  readonly rank: number
  readonly microBatch: number
  readonly chunk: number
  readonly layers: Partition.LayerRange
  readonly isFirst: boolean
  readonly isLast: boolean
  readonly params: ReadonlyMap<string, RankParams.Held>
  /** The stage context of this rank, given the parameter lookup of the tape. */
  readonly context: (param: (name: string) => Tensor.Tensor) => Stage.StageContext
  readonly data: Data.MicroBatch
  /** The activation received from the previous stage (none on the first stage). */
  readonly received: Tensor.Tensor | undefined
  /** bf16: mixed precision over the fp32 master weights (default fp32: no rounding). */
  readonly precision?: "fp32" | "bf16" | undefined
  /**
   * With bf16: the step's bf16 copies of the shards, made at a shard's first use in the step and
   * shared by every micro-batch (the weights change only at the step's end); the trainer empties
   * it when a step starts.
   */
  readonly bf16Copies?: Map<RankParams.Held, Tensor.Tensor> | undefined
  /**
   * The device the chunk computes on (the host by default). Each shard's copy there is shared by
   * the micro-batches of a step (`deviceCopies`, which the trainer empties when a step starts):
   * the device optimizer's weights (or their bf16 rounding) put there at the step's start
   * (DeviceOptimizer), else an upload made on first use. Its gradients accumulate on the device
   * (`deviceGrads`): the device optimizer's accumulators, or ones the trainer downloads once a
   * step for the host's optimizer (ZeRO-Offload's way).
   */
  readonly device?: Device.Device | undefined
  readonly deviceCopies?: Map<RankParams.Held, Tensor.Tensor> | undefined
  /** On a device: each shard's gradient accumulator there (the trainer downloads it once a step). */
  readonly deviceGrads?: ((held: RankParams.Held) => GradAccumulator.Accumulator) | undefined
  /** The rank's step generation (StableWeights): the parameters stay unchanged until the step ends. */
  readonly generation?: number | undefined
}

/**
 * The chunk's forward: its output (loss, aux terms, expert loads) and, for the interpreter,
 * what it sends on and its backward.
 * @category combinators
 */
export const forward = (c: ChunkInput) => Effect.gen(() => forwardSteps(c))

/** forward's body, a generator function defined once , not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* forwardSteps(c: ChunkInput) {
  const bf16 = c.precision === "bf16"
  const tape = Tape.make({ name: `rank ${c.rank} mb ${c.microBatch} chunk ${c.chunk}`, precision: bf16 ? "bf16" : "fp32" })
  const cache = new Map<string, Tensor.Tensor>()
  const param = (name: string) => {
    const hit = cache.get(name)
    if (hit !== undefined) return hit
    const held = c.params.get(name)
    if (held === undefined) throw new Error(`rank ${c.rank} does not hold parameter ${name}`)
    // The leaf's gradients go straight into the shard's accumulator (GradAccumulator).
    const leaf = StableWeights.mark(
      tape.parameter(
        deviceCopy(c, held, () => (bf16 ? bf16Copy(c.bf16Copies, held) : held.value)),
        c.deviceGrads?.(held) ?? held.grad,
      ),
      c.generation ?? 0,
    )
    // A zero-centered norm weight (--apply-layernorm-1p) scales by 1 + w.
    const read = held.spec.onePlus === true ? add(leaf, Tensor.full(leaf.shape, 1, { dtype: leaf.dtype, device: leaf.device })) : leaf
    cache.set(name, read)
    return read
  }
  const since = StorageRecycler.serial()
  const input = c.received === undefined ? undefined : tape.parameter(c.device === undefined ? c.received : to(c.received, c.device))
  const out = yield* Stage.forward(c.context(param), [c.layers.start, c.layers.end], input, c.data, c.isFirst, c.isLast)
  const backward = (outputGradient: Tensor.Tensor | undefined) => Effect.gen(() => backwardSteps(c, tape, out, input, since, outputGradient))
  // NOTE: the activation leaves without its tape (same storage); the receiver starts its own.
  const output = out.hidden === undefined ? undefined : TensorLayout.attach(Tensor.detach(out.hidden.tensor), out.hidden.layout)
  // A forward that no backward follows (evaluation): its activations serve the next micro-batch.
  const release = () => ActivationRelease.release(tape.recorded(), since, [out.hidden?.tensor, out.loss, out.mtp, out.aux])
  // What the tape keeps for the backward (RankMemory's activation peak).
  return { out, forwarded: { output, backward } satisfies Interpreter.Forwarded<unknown, never>, keptBytes: tape.savedBytes(), release }
}

/** A chunk's backward: its steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* backwardSteps(c: ChunkInput, tape: Tape.Tape, out: Mixtral.ChunkOutput, input: Tensor.Tensor | undefined, since: number, outputGradient: Tensor.Tensor | undefined) {
  // What the next stage sent comes over to this chunk's device.
  const root = rootOf(out, outputGradient === undefined || c.device === undefined ? outputGradient : to(outputGradient, c.device))
  if (root === undefined) return yield* Effect.die(new Error(`rank ${c.rank}: backward of mb ${c.microBatch} chunk ${c.chunk} has neither a loss nor an output gradient`))
  const nodes = tape.recorded()
  yield* tape.backwardEffect(root)
  // The forward's activations are dead now: their storage serves the next micro-batch.
  ActivationRelease.release(nodes, since, [out.hidden?.tensor, out.loss, out.mtp, out.aux, root])
  return input === undefined ? undefined : (input.grad ?? Tensor.zeros(input.shape, { dtype: input.dtype, device: input.device }))
}

/** The bf16 copy of a shard for this step: the step's shared one, made on first use. */
const bf16Copy = (copies: Map<RankParams.Held, Tensor.Tensor> | undefined, held: RankParams.Held): Tensor.Tensor => stepCopy(copies, held, () => copyToBf16(held.value))

/**
 * A shard (or its bf16 copy, `value`) on the chunk's device: the step's shared upload, made on
 * first use (or put there by the device optimizer, DeviceOptimizer.startStep).
 */
const deviceCopy = (c: ChunkInput, held: RankParams.Held, value: () => Tensor.Tensor): Tensor.Tensor =>
  c.device === undefined || !Device.isAccelerator(c.device) ? value() : stepCopy(c.deviceCopies, held, () => to(value(), c.device as Device.Device))

/** The step's copy of a shard in `copies` (shared by its micro-batches), made on first use. */
const stepCopy = (copies: Map<RankParams.Held, Tensor.Tensor> | undefined, held: RankParams.Held, make: () => Tensor.Tensor): Tensor.Tensor => {
  const hit = copies?.get(held)
  if (hit !== undefined) return hit
  const made = make()
  copies?.set(held, made)
  return made
}

/** What the backward starts from: the loss, or the output against the gradient received. */
const rootOf = (out: Mixtral.ChunkOutput, outputGradient: Tensor.Tensor | undefined): Tensor.Tensor | undefined => {
  // The objective: the loss, the multi-token prediction term where the model has one, the aux terms.
  if (out.loss !== undefined) return add(out.mtp === undefined ? out.loss : add(out.loss, out.mtp), out.aux)
  if (out.hidden === undefined || outputGradient === undefined) return undefined
  return add(seed(out.hidden.tensor, outputGradient), out.aux)
}

/**
 * A scalar whose backward hands `t` the gradient received from the next stage, as it is: the
 * gradient sum(t * gradient) would give `t` (1 * gradient), without computing that sum, whose
 * value nothing reads (on a device it would come down to the host). Its value is 0, where `t` is.
 */
const seed = (t: Tensor.Tensor, gradient: Tensor.Tensor): Tensor.Tensor => Autograd.result("stageSeed", [t], Place.of("stageSeed", t).zeros(t.dtype, 1), [], () => [gradient])
