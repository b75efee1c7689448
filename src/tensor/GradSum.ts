/**
 * GradSum: how a backward pass sums the gradients that reach one tensor, without copying the
 * first one.
 *
 * A gradient arrives as a rule's output, which may share storage with other gradients (add's
 * backward hands the same tensor to both inputs; a reshape's shares its input's storage). So the
 * first gradient of a tensor is kept as given, and only when a second one arrives is the sum
 * of the two written into new storage this module owns; later ones add into that sum in place.
 * The sums are the same, in the same order, as copying the first gradient at once (copy + add),
 * so results keep their bits; what goes is a copy per parameter per pass (a step of the
 * realistic MoE shape copied every expert weight's gradient once per micro-batch).
 *
 * A sum handed to a backward rule (`disown`) may come back aliased, so it is owned no more.
 */
import * as Device from "./Device.js"
import { runtimeOf } from "./device/Runtimes.js"
import * as AddInto from "./kernels/AddInto.js"
import * as StorageRecycler from "./StorageRecycler.js"
import * as Tensor from "./Tensor.js"

/** The sums this module made: the only gradients ever added into in place. */
const owned = new WeakSet<Tensor.Tensor>()

/**
 * acc + g: in place when acc is a sum this module owns, otherwise into a new owned copy of acc.
 * @category kernels
 */
export const accumulate = (acc: Tensor.Tensor, g: Tensor.Tensor): Tensor.Tensor => {
  if (Device.isAccelerator(acc.device)) {
    // Two gradients that host ops' backwards made (neither in device memory) are summed on the
    // host, the same float32 sum: one upload when a device op reads it, not two now.
    if (!acc.isResident && !g.isResident) return new Tensor.Tensor({ shape: acc.shape, data: AddInto.sumOf(acc.readHost(), g.readHost()), device: acc.device })
    // On a device, into a new device array (never in place: acc may have a host copy too).
    const runtime = runtimeOf(acc.device)
    const sum = runtime.allocate(acc.dtype, acc.size)
    runtime.kernels.add(acc.deviceArray(runtime), g.deviceArray(runtime), sum)
    return new Tensor.Tensor({ shape: acc.shape, resident: sum, device: acc.device })
  }
  if (owned.has(acc)) {
    AddInto.addInto(acc.data, g.data)
    return acc
  }
  const sum = Tensor.fromStorage(AddInto.sumOf(acc.data, g.data), acc.shape, { device: acc.device })
  owned.add(sum)
  return sum
}

/**
 * Adds g to a leaf's `.grad` (the first gradient is kept as given).
 * @category kernels
 */
export const accumulateLeaf = (leaf: Tensor.Tensor, g: Tensor.Tensor): void => {
  if (leaf.grad !== undefined) {
    leaf.grad = accumulate(leaf.grad, g)
    return
  }
  // Kept as given: the pass that made g must not hand its storage back (BackwardPass).
  if (g.hostStorage !== undefined) StorageRecycler.keep(g.hostStorage)
  leaf.grad = Tensor.detach(g)
}

/**
 * Marks a sum as handed on (to a backward rule, which may return it as it is): never added
 * into in place again.
 * @category kernels
 */
export const disown = (g: Tensor.Tensor): void => {
  owned.delete(g)
}
