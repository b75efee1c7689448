/**
 * BackwardPass: one backward pass's gradients not yet consumed, keyed by the tensor they are
 * the gradient of, and the storage the pass hands back once nothing can read it.
 *
 * A gradient is taken once, by the node that made its tensor, whose rule turns it into its
 * inputs' gradients (`give`): a non-leaf input's are summed as they arrive (GradSum), a leaf's
 * go to its accumulator or `.grad`. A gradient a synchronous rule has consumed, or that was added
 * into a sum or an accumulator, is dead unless another pending gradient shares its bytes (add's
 * rule hands the same tensor to both inputs; a reshape's shares storage), so the pass keeps the
 * pending gradients per buffer and hands a consumed one to the storage recycler when none of
 * them overlaps it (a slab's views share a buffer without sharing bytes). Only storage made inside
 * a rule or the pass's sums is handed back (StorageRecycler.freshWithin: never the seed, a
 * forward activation or a collective's result, except a collective of private storage, whose
 * transport let go of both sides when it completed: `giveEffect`), and never storage something keeps past the
 * pass (a leaf's `.grad` kept as given, a deferred weight-gradient product's operands:
 * StorageRecycler.keep). What that saves: at the realistic MoE shape a step makes ~1 GB of
 * tensors, and V8 runs a scavenge after every 32 MiB of new ArrayBuffers; gradients handed back
 * serve the next rules' outputs instead of new buffers.
 *
 * The test suites run the recycler in checking mode (a storage handed back is detached), so a
 * reader the count missed fails loudly instead of reading the next owner's values.
 */
import * as Device from "./Device.js"
import * as DType from "./DType.js"
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
  /** Accumulates a node's input gradients (the sums it makes are fresh: StorageRecycler.freshWithin). */
  readonly give: (node: Node, inputGrads: ReadonlyArray<Tensor.Tensor | undefined>) => void
  /** Runs a node's synchronous rule on `g` (taken from this pass), gives its results, and hands back g's storage if nothing else holds it. */
  readonly runRule: (node: Node, g: Tensor.Tensor) => void
  /**
   * Gives the results of a node's effectful rule (a collective's adjoint), run on `g` since
   * `since` (StorageRecycler.serial). For a collective of private storage (Node.privateStorage)
   * its results made since then are the pass's own, as a synchronous rule's, and g's storage goes
   * back if nothing else holds it (the transport let go of it when the adjoint completed).
   */
  readonly giveEffect: (node: Node, g: Tensor.Tensor, inputGrads: ReadonlyArray<Tensor.Tensor | undefined>, since: number) => void
}

/**
 * A pass seeded with `seed` as the gradient of `loss`.
 * @category constructors
 */
export const make = (loss: Tensor.Tensor, seed: Tensor.Tensor): Pass => {
  const grads = new Map<Tensor.Tensor, Tensor.Tensor>()
  /** Pending gradients' storage per buffer (host storage only; a slab's views share one buffer). */
  const holders = new Map<ArrayBufferLike, Array<DType.Storage>>()
  const hold = (g: Tensor.Tensor, by: 1 | -1): void => {
    const storage = g.hostStorage
    if (storage === undefined) return
    const held = holders.get(storage.buffer)
    if (by === 1) {
      if (held === undefined) holders.set(storage.buffer, [storage])
      else held.push(storage)
      return
    }
    if (held === undefined) return
    const at = held.indexOf(storage)
    if (at >= 0) held.splice(at, 1)
    if (held.length === 0) holders.delete(storage.buffer)
  }
  /** Whether a pending gradient shares bytes with `storage`. */
  const pending = (storage: DType.Storage): boolean => holders.get(storage.buffer)?.some((s) => DType.overlapsInBuffer(s, storage)) ?? false
  const set = (t: Tensor.Tensor, g: Tensor.Tensor): void => {
    const prev = grads.get(t)
    if (prev === g) return
    if (prev !== undefined) hold(prev, -1)
    hold(g, 1)
    grads.set(t, g)
  }
  set(loss, seed)
  if (loss.isLeaf) GradSum.accumulateLeaf(loss, seed)
  /** A consumed gradient's storage goes back if it was made in the pass and nothing pending shares it. */
  const handBack = (g: Tensor.Tensor): void => {
    const storage = g.hostStorage
    if (storage === undefined || storage === seed.hostStorage || g.device.kind !== "cpu" || pending(storage)) return
    if (StorageRecycler.isFresh(storage)) StorageRecycler.recycle(storage)
  }
  const give = (node: Node, inputGrads: ReadonlyArray<Tensor.Tensor | undefined>): void => {
    // Gradients this call consumed (added into an accumulator or a sum): handed back once every
    // input has had its own (a rule may give one tensor to several inputs).
    const consumed: Array<Tensor.Tensor> = []
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
        else {
          // Copied or added into the accumulator.
          GradAccumulator.addGradient(accumulator, gi)
          consumed.push(gi)
        }
      } else {
        const prev = grads.get(input)
        if (prev === undefined) set(input, gi)
        else {
          const sum = GradSum.accumulate(prev, gi)
          set(input, sum)
          consumed.push(gi)
          if (sum !== prev) consumed.push(prev)
        }
      }
    })
    for (const g of consumed) handBack(g)
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
    give: (node, inputGrads) => StorageRecycler.freshWithin(() => give(node, inputGrads)),
    runRule: (node, g) => {
      StorageRecycler.freshWithin(() => give(node, node.backward(g)))
      handBack(g)
    },
    giveEffect: (node, g, inputGrads, since) => {
      if (node.privateStorage !== true) return StorageRecycler.freshWithin(() => give(node, inputGrads))
      for (const gi of inputGrads) {
        const storage = gi?.hostStorage
        if (storage !== undefined && gi?.device.kind === "cpu" && StorageRecycler.madeSince(storage, since)) StorageRecycler.markFresh(storage)
      }
      StorageRecycler.freshWithin(() => give(node, inputGrads))
      handBack(g)
    },
  }
}
