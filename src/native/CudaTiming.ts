/**
 * CudaTiming: the device-resident timings of pleat_cuda.node, for scripts/device-check (issue
 * 15's GPU checks): the MoE permute and unpermute against a device copy of the same bytes
 * (cuda/src/device_timing_binding.cc), and one MoE layer forward and backward
 * (cuda/src/moe_layer_timing.cc), timed with CUDA events on data that stays on the GPU, plus that
 * layer run once on given inputs so its results can be held against a reference. Every call
 * throws "no device:" without a GPU (after checking its shape); the layer needs cuBLAS loaded
 * (Cuda.loadCublas). Throws AddonLoadError when the CUDA addon is not built.
 */
import * as Addon from "./Addon.js"

/**
 * The MoE permute and unpermute timed against a device copy of the same bytes: mean
 * milliseconds per call.
 * @category models
 */
export interface DevicePermuteTiming {
  readonly permuteMs: number
  readonly unpermuteMs: number
  readonly copyMs: number
  /** tokens * topk: the rows each pass moves. */
  readonly rows: number
  /** rows * hidden * 4: what a pass (and the copy) reads and writes. */
  readonly bytes: number
}

/**
 * One MoE layer's forward and backward: the milliseconds of each timed step's forward and
 * backward, and the rows each expert got.
 * @category models
 */
export interface MoeLayerTiming {
  readonly forwardMs: ReadonlyArray<number>
  readonly backwardMs: ReadonlyArray<number>
  readonly rows: number
  readonly perExpert: ReadonlyArray<number>
}

/**
 * The timed MoE layer run once on given inputs: its output and gradients, and the routing it chose.
 * @category models
 */
export interface MoeLayerRun {
  readonly out: Float32Array
  readonly dx: Float32Array
  readonly dwg: Float32Array
  readonly dwu: Float32Array
  readonly dwd: Float32Array
  readonly chosen: Int32Array
  readonly probs: Float32Array
}

/**
 * A MoE layer's shape: tokens, hidden width, expert width, experts and experts per token.
 * @category models
 */
export interface MoeShape {
  readonly tokens: number
  readonly hidden: number
  readonly ffn: number
  readonly experts: number
  readonly topk: number
}

type Dims = [number, number, number, number, number]

interface TimingAddon {
  timeDevicePermute(tokens: number, hidden: number, experts: number, topk: number, reps: number): DevicePermuteTiming
  timeMoeLayer(...args: [...Dims, number]): MoeLayerTiming
  runMoeLayer(x: Float32Array, wr: Float32Array, wg: Float32Array, wu: Float32Array, wd: Float32Array, dy: Float32Array, ...shape: Dims): MoeLayerRun
}

const dims = (s: MoeShape): Dims => [s.tokens, s.hidden, s.ffn, s.experts, s.topk]

/**
 * The timings.
 * @category kernels
 */
export const timings = () => {
  const a = Addon.load<TimingAddon>("pleat_cuda", ["timeDevicePermute", "timeMoeLayer", "runMoeLayer"])
  return {
    /** Permute and unpermute of `tokens * topk` rows on data that stays on the device, and a device copy of the same bytes. */
    permute: (shape: Omit<MoeShape, "ffn">, reps: number): DevicePermuteTiming => a.timeDevicePermute(shape.tokens, shape.hidden, shape.experts, shape.topk, reps),
    /**
     * One MoE layer forward and backward (router, permute, per-expert bf16 GEMMs through
     * cuBLAS, SwiGLU, combine, and their backward), `reps` steps after an untimed one.
     */
    moeLayer: (shape: MoeShape, reps: number): MoeLayerTiming => a.timeMoeLayer(...dims(shape), reps),
    /**
     * The same layer once on the caller's float32 inputs (x, dy [T, H], wr [H, E], wg, wu [E, H,
     * F], wd [E, F, H]), every result copied back: for checking it against a reference.
     */
    runMoeLayer: (
      inputs: { readonly x: Float32Array; readonly wr: Float32Array; readonly wg: Float32Array; readonly wu: Float32Array; readonly wd: Float32Array; readonly dy: Float32Array },
      shape: MoeShape,
    ): MoeLayerRun => a.runMoeLayer(inputs.x, inputs.wr, inputs.wg, inputs.wu, inputs.wd, inputs.dy, ...dims(shape)),
  }
}
