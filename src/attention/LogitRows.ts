/**
 * LogitRows: the row work of the vocabulary-parallel cross-entropy over one member's logits
 * [rows, cols] (VocabParallel.crossEntropy), done where the logits live. On a device the
 * device's cross-entropy kernels read them in place and only per-row statistics (float64, a few
 * numbers a row) and the target logits cross to the host, as Effects that wait without blocking
 * the JS thread; the gradient is made on the device.
 * On the host, the native kernels for float32 (CpuCrossEntropy) or the loops. All compute in
 * float64 in the same order (CUDA's exp may differ in a double's last bit; sim is the host's).
 */
import { crossEntropyKernels } from "../native/CpuCrossEntropy.js"
import * as Effect from "effect/Effect"
import type { DeviceRuntime } from "../tensor/device/DeviceRuntime.js"
import * as Place from "../tensor/device/Place.js"
import * as DType from "../tensor/DType.js"
import { arrayOnHost } from "../tensor/ops/Transfer.js"
import type * as Tensor from "../tensor/Tensor.js"

/**
 * The row work over one member's logits.
 * @category models
 */
export interface LogitRows {
  /** Each row's largest logit (NaN if any is NaN). */
  readonly rowMax: () => Effect.Effect<Float64Array>
  /** Each row's sum over j ascending of exp(x[r, j] - max[r]). */
  readonly rowSumExp: (max: Float64Array) => Effect.Effect<Float64Array>
  /** The logits at flat positions `at` (row * cols + column), as float64. */
  readonly pick: (at: Int32Array) => Effect.Effect<Float64Array>
  /**
   * d[r, j] = scale * (exp(x[r, j] - logSum[r]) - (start + j === targets[r] ? 1 : 0)), zero rows
   * where the target is `ignore`: storage where the logits are.
   */
  readonly grad: (logSum: Float64Array, targets: Int32Array, ignore: number, start: number, scale: number) => Place.Buffer
}

const onDevice = (rt: DeviceRuntime, logits: Tensor.Tensor, rows: number, cols: number): LogitRows => {
  const x = logits.deviceArray(rt)
  const k = rt.kernels
  return {
    rowMax: () => {
      const max = rt.allocate("float64", rows)
      k.crossEntropyRowMax(x, rows, cols, max)
      return arrayOnHost(max) as Effect.Effect<Float64Array>
    },
    rowSumExp: (max) => {
      const sum = rt.allocate("float64", rows)
      k.crossEntropyRowSumExp(x, rows, cols, rt.upload(max), sum)
      return arrayOnHost(sum) as Effect.Effect<Float64Array>
    },
    pick: (at) => {
      const picked = rt.allocate("float32", at.length)
      k.gatherRows(x, at, picked, 1)
      return Effect.map(arrayOnHost(picked), (values) => Float64Array.from(values))
    },
    grad: (logSum, targets, ignore, start, scale) => {
      const d = rt.allocate("float32", rows * cols)
      k.crossEntropyGrad(x, rows, cols, rt.upload(logSum), targets, ignore, start, scale, d)
      return d
    },
  }
}

const onHost = (logits: Tensor.Tensor, rows: number, cols: number): LogitRows => {
  // Read only: logits on a device whose dtype has no device path keep their device copy.
  const x = logits.readHost()
  // float32 logits run the row loops in native code (the same float64 arithmetic in the same order).
  const native = x instanceof Float32Array ? crossEntropyKernels() : undefined
  return {
    rowMax: () =>
      Effect.sync(() => {
        const max = new Float64Array(rows)
        if (native !== undefined) native.rowMax(x as Float32Array, rows, cols, max)
        else
          for (let i = 0; i < rows; i++) {
            let m = Number.NEGATIVE_INFINITY
            for (let j = 0; j < cols; j++) m = Math.max(m, x[i * cols + j] as number)
            max[i] = m
          }
        return max
      }),
    rowSumExp: (max) =>
      Effect.sync(() => {
        const sum = new Float64Array(rows)
        if (native !== undefined) native.rowSumExp(x as Float32Array, rows, cols, max, sum)
        else
          for (let i = 0; i < rows; i++) {
            let s = 0
            for (let j = 0; j < cols; j++) s += Math.exp((x[i * cols + j] as number) - (max[i] as number))
            sum[i] = s
          }
        return sum
      }),
    pick: (at) => Effect.sync(() => Float64Array.from(at, (p) => x[p] as number)),
    grad: (logSum, targets, ignore, start, scale) => {
      if (native !== undefined) {
        const d = DType.allocateUninitialized("float32", rows * cols) as Float32Array
        native.grad(x as Float32Array, rows, cols, logSum, targets, ignore, start, scale, d)
        return d
      }
      const d = DType.allocate(DType.of(x), rows * cols)
      for (let i = 0; i < rows; i++) {
        const t = targets[i] as number
        if (t === ignore) continue
        for (let j = 0; j < cols; j++) {
          const p = Math.exp((x[i * cols + j] as number) - (logSum[i] as number))
          d[i * cols + j] = scale * (p - (start + j === t ? 1 : 0))
        }
      }
      return d
    },
  }
}

/**
 * The row work over `logits` [rows, cols]: on their device when they are float32 there, on the
 * host otherwise.
 * @category constructors
 */
export const of = (logits: Tensor.Tensor, rows: number, cols: number): LogitRows => {
  const rt = Place.of("vocabParallelCrossEntropy", logits).runtime
  return rt !== undefined && logits.dtype === "float32" ? onDevice(rt, logits, rows, cols) : onHost(logits, rows, cols)
}
