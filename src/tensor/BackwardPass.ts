/**
 * BackwardPass: one backward pass's gradients not yet consumed, keyed by the tensor they are
 * the gradient of, and the storage the pass hands back once nothing can read it.
 *
 * A gradient is taken once, by the node that made its tensor, whose rule turns it into its
 * inputs' gradients (`give`): a non-leaf input's are summed as they arrive (GradSum), a leaf's
 * go to its accumulator or `.grad`. A gradient a synchronous rule has consumed is dead unless
 * another pending gradient shares its buffer (add's rule hands the same tensor to both inputs;
 * a reshape's shares storage), so the pass counts the pending gradients per buffer and hands a
 * consumed one to the storage recycler when its buffer has none left. Only storage made inside
 * a rule or the pass's sums is handed back (StorageRecycler.freshWithin: never the seed, a
 * forward activation or a collective's result), and never storage something keeps past the
 * pass (a leaf's `.grad` kept as given, a deferred weight-gradient product's operands:
 * StorageRecycler.keep). What that saves: at the realistic MoE shape a step makes ~1 GB of
 * tensors, and V8 runs a scavenge after every 32 MiB of new ArrayBuffers; gradients handed back
 * serve the next rules' outputs instead of new buffers.
 *
 * The test suites run the recycler in checking mode (a storage handed back is detached), so a
 * reader the count missed fails loudly instead of reading the next owner's values.
 */
import * as Device from "./Device.js"
import * as GradAccumulator from "./GradAccumulator.js"
import * as GradSum from "./GradSum.js"
import { to } from "./ops/Transfer.js"
import * as StorageRecycler from "./StorageRecycler.js"
import type { Node } from "./Tape.js"
import type * as Tensor from "./Tensor.js"
import * as TensorError from "./TensorError.js"
import { sameShape } from "./Tensor.js"

/**
 * One backward pass.
 * @category models
 */
export interface Pass {
  /** The gradient of a node's output, removed from the pass (each output is used once). */
  readonly take: (node: Node) => Tensor.Tensor | undefined
  /** Accumulates a node's input gradients. */
  readonly give: (node: Node, inputGrads: ReadonlyArray<Tensor.Tensor | undefined>) => void
  /** Runs a node's synchronous rule on `g` (taken from this pass), gives its results, and hands back g's storage if nothing else holds it. */
  readonly runRule: (node: Node, g: Tensor.Tensor) => void
}

/**
 * A pass seeded with `seed` as the gradient of `loss`.
 * @category constructors
 */
export const make = (loss: Tensor.Tensor, seed: Tensor.Tensor): Pass => {
  const grads = new Map<Tensor.Tensor, Tensor.Tensor>()
  /** Pending gradients per buffer (host storage only). */
  const holders = new Map<ArrayBufferLike, number>()
  const hold = (g: Tensor.Tensor, by: number): void => {
    const storage = g.hostStorage
    if (storage === undefined) return
    const n = (holders.get(storage.buffer) ?? 0) + by
    if (n === 0) holders.delete(storage.buffer)
    else holders.set(storage.buffer, n)
  }
  const set = (t: Tensor.Tensor, g: Tensor.Tensor): void => {
    const prev = grads.get(t)
    if (prev === g) return
    if (prev !== undefined) hold(prev, -1)
    hold(g, 1)
    grads.set(t, g)
  }
  set(loss, seed)
  if (loss.isLeaf) GradSum.accumulateLeaf(loss, seed)
  const give = (node: Node, inputGrads: ReadonlyArray<Tensor.Tensor | undefined>): void => {
    node.inputs.forEach((input, j) => {
      const given = inputGrads[j]
      if (given === undefined || !input.requiresGrad) return
      // A gradient is delivered on its input's device (a rule that computed it elsewhere
      // costs a copy, counted in the device's transfers).
      const gi = Device.same(given.device, input.device) ? given : to(given, input.device)
      if (!sameShape(gi.shape, input.shape)) {
        throw TensorError.shape(node.op, `backward gave a gradient of shape ${TensorError.formatShape(gi.shape)} for an input of shape ${TensorError.formatShape(input.shape)}`)
      }
      if (input.isLeaf) {
        const accumulator = GradAccumulator.of(input)
        if (accumulator === undefined) GradSum.accumulateLeaf(input, gi)
        else GradAccumulator.addGradient(accumulator, gi)
      } else {
        const prev = grads.get(input)
        set(input, prev === undefined ? gi : GradSum.accumulate(prev, gi))
      }
    })
  }
  return {
    take: (node) => {
      const g = grads.get(node.output)
      if (g === undefined) return undefined
      grads.delete(node.output)
      hold(g, -1)
      // The rule may hand it on as it is (to several inputs): no longer a sum to add into.
      GradSum.disown(g)
      return g
    },
    give,
    runRule: (node, g) => {
      StorageRecycler.freshWithin(() => give(node, node.backward(g)))
      const storage = g.hostStorage
      if (storage === undefined || storage === seed.hostStorage || g.device.kind !== "cpu" || holders.has(storage.buffer)) return
      if (StorageRecycler.isFresh(storage)) StorageRecycler.recycle(storage)
    },
  }
}
