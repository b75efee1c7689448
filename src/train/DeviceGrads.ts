/**
 * DeviceGrads: where a rank's gradients accumulate in a step when it computes on a device. With
 * the optimizer on the device (DeviceOptimizer) they are its shards' gradients and stay there;
 * otherwise each shard gets an accumulator on the device, cleared at each step's start and brought
 * to the host's gradient once (for the host's optimizer: a model chunk's as soon as its gradients
 * are final, under the distributed optimizer); on the host alone they are the host's gradients.
 */
import type { DeviceArray, DeviceRuntime } from "../tensor/device/DeviceRuntime.js"
import * as GradAccumulator from "../tensor/GradAccumulator.js"
import * as DeviceOptimizer from "./DeviceOptimizer.js"
import type * as RankParams from "./RankParams.js"

/**
 * A rank's gradient accumulators for a step.
 * @category models
 */
export interface DeviceGrads {
  /** A shard's accumulator on the device (made on first use), or undefined on the host. */
  readonly gradOf: ((held: RankParams.Held) => DeviceArray) | undefined
  /** Clears the device accumulators for a new step. */
  readonly startStep: () => void
  /** The device accumulators of `held` not yet brought to the host this step, brought now. */
  readonly bringHome: (held: (h: RankParams.Held) => boolean) => void
  /** Every accumulator the step's products may defer into (their held rows count as activations). */
  readonly accumulators: () => Iterable<GradAccumulator.Accumulator>
}

/**
 * The accumulators of `params` on `runtime` (none: the host), or the device optimizer's.
 * @category constructors
 */
export const make = (params: ReadonlyMap<string, RankParams.Held>, runtime: DeviceRuntime | undefined, onDevice: DeviceOptimizer.DeviceOptimizer | undefined): DeviceGrads => {
  const made = new Map<RankParams.Held, DeviceArray>()
  const downloaded = new Set<RankParams.Held>()
  const own =
    runtime === undefined
      ? undefined
      : (held: RankParams.Held): DeviceArray => {
          const hit = made.get(held)
          if (hit !== undefined) return hit
          const g = runtime.allocate(held.value.dtype, held.value.size)
          GradAccumulator.clear(g)
          made.set(held, g)
          return g
        }
  return {
    gradOf: onDevice !== undefined ? (held) => DeviceOptimizer.gradOf(onDevice, held) : own,
    startStep: () => {
      for (const g of made.values()) GradAccumulator.clear(g)
      downloaded.clear()
    },
    bringHome: (held) => {
      for (const [h, g] of made) {
        if (downloaded.has(h) || !held(h)) continue
        GradAccumulator.downloadInto(g, h.grad)
        downloaded.add(h)
      }
    },
    accumulators: () =>
      onDevice !== undefined
        ? [...params.values()].map((h) => DeviceOptimizer.gradOf(onDevice, h))
        : runtime !== undefined
          ? made.values()
          : [...params.values()].map((h) => h.grad),
  }
}
