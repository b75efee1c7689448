/**
 * SimulatedDevice: the device caching allocator of the GPU path (cuda/src/device/
 * caching_allocator.h) over a simulated device of a given capacity, built into the CPU addon so
 * that its logic (size classes, splitting and merging, stream-ordered reuse, release on out of
 * memory) is tested on machines without a GPU. The CUDA addon runs the same C++ over cudaMalloc
 * and CUDA events.
 */
import type { SimulatedDeviceAllocator } from "./CpuAddon.js"
import { addonIfBuilt } from "./CpuAddon.js"

/**
 * A fresh allocator over a simulated device of `capacityBytes`; undefined when the CPU addon is
 * not built or predates it.
 * @category constructors
 */
export const simulatedDeviceAllocator = (capacityBytes: number): SimulatedDeviceAllocator | undefined => {
  const make = addonIfBuilt()?.SimulatedDeviceAllocator
  return make === undefined ? undefined : new make(capacityBytes)
}
