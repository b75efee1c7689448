/**
 * ActivationRelease: once a micro-batch's backward has run, the storage of its forward's op
 * outputs goes back to the storage recycler (StorageRecycler: buffers of their own; Slabs: the
 * views of 64 KB and less), where the next micro-batch's ops find it instead of new memory.
 *
 * Why: every new ArrayBuffer counts toward V8's external memory, and V8 collects for every
 * ~16-64 MB of it. A forward's activations are dead once its backward has consumed them, but
 * only a collection could tell; at hidden 1024 the default model made ~80 MB of them a step (one
 * mark-compact and ~6 scavenges a step, a fifth of its time).
 *
 * What is taken back, of the nodes a tape recorded: an output on the host that
 *   - was made after `since` (StorageRecycler.madeSince: during this forward, never something made
 *     before it, such as a weight or a cache, whatever op passed it on);
 *   - shares no bytes with the node's inputs (a view or a pass-through is not its own);
 *   - is neither a collective's result nor the input of a collective (a transport may share or
 *     keep what it was given or gave: the zero-copy backends), except a group of one's, which is
 *     its input and met no transport (Autograd.passThroughEffect), and a collective of private
 *     storage's (Node.privateStorage: the copying backends and MPI, whose transport let go of
 *     both when it completed);
 *   - shares no bytes with `survivors` (what the micro-batch hands on: the loss, the activation
 *     sent to the next stage);
 *   - and that nothing keeps past its maker (StorageRecycler.keep: a deferred weight-gradient
 *     product's operands), which `recycle` checks with the rest of its rules.
 * The caller asserts that nothing else holds the forward's outputs once its backward is done. The
 * test suites run the recycler in checking mode (a storage handed back is detached), so a reader
 * this missed fails loudly.
 */
import * as DType from "./DType.js"
import * as StorageRecycler from "./StorageRecycler.js"
import type { Node } from "./Tape.js"
import type * as Tensor from "./Tensor.js"

/**
 * Hands back the outputs of `nodes` made after `since` that nothing else can hold (above);
 * returns how many were taken.
 * @category mutations
 */
export const release = (nodes: ReadonlyArray<Node>, since: number, survivors: ReadonlyArray<Tensor.Tensor | undefined>): number => {
  const spared: Array<DType.Storage> = []
  const spare = (t: Tensor.Tensor | undefined): void => {
    if (t?.hostStorage !== undefined) spared.push(t.hostStorage)
  }
  survivors.forEach(spare)
  for (const node of nodes) {
    if (node.backwardEffect === undefined || node.passThrough === true || node.privateStorage === true) continue
    spare(node.output)
    node.inputs.forEach(spare)
  }
  const sparedBytes = DType.byteIndex(spared)
  let taken = 0
  for (const node of nodes) {
    const out = node.output
    const storage = out.hostStorage
    if (storage === undefined || out.device.kind !== "cpu" || !StorageRecycler.madeSince(storage, since)) continue
    if (node.inputs.some((t) => t.hostStorage !== undefined && DType.overlaps(t.hostStorage, storage))) continue
    if (DType.overlapsAny(sparedBytes, storage)) continue
    if (StorageRecycler.recycle(storage)) taken += 1
  }
  return taken
}
