/**
 * SimulatedRuntime: a device whose memory is host buffers of its own and whose kernels are the
 * host's (native float32, the reference for float64) run on them. It exists so that the device
 * paths of the ops, and the copies Tensor.ts makes between host and device, run and are tested
 * on machines without a GPU: a tensor that reads a stale copy, or an op that forgets its device,
 * gives different values or fails, where on `sim` it must give the host's bits exactly.
 */
import * as Cpu from "../../native/Cpu.js"
import { type CrossEntropyKernels, crossEntropyKernels } from "../../native/CpuCrossEntropy.js"
import { type DispatchKernels, dispatchKernels } from "../../native/CpuDispatch.js"
import * as Device from "../Device.js"
import * as DType from "../DType.js"
import { adamwInto } from "../kernels/AdamwInto.js"
import * as AttentionSinks from "../kernels/AttentionSinks.js"
import * as Bf16Matmul from "../kernels/Bf16Matmul.js"
import * as Bf16Round from "../kernels/Bf16Round.js"
import * as AddInto from "../kernels/AddInto.js"
import * as ElementwiseInto from "../kernels/ElementwiseInto.js"
import { gatedBackwardInto, gatedInto } from "../kernels/GatedInto.js"
import * as Kernels from "../kernels/Kernels.js"
import { onOperands } from "../kernels/MatmulOperands.js"
import { reference } from "../kernels/Reference.js"
import { rotateInto } from "../kernels/RopeRotate.js"
import { sumSquares } from "../kernels/SumSquares.js"
import type { DeviceArray, DeviceKernels, DeviceRuntime } from "./DeviceRuntime.js"
import { noTransfers } from "./DeviceRuntime.js"

/** A simulated device array: its own host storage. */
interface SimArray extends DeviceArray {
  readonly values: DType.Storage
}

const values = (x: DeviceArray): DType.Storage => (x as SimArray).values
const optional = (x: DeviceArray | undefined): DType.Storage | undefined => (x === undefined ? undefined : values(x))
/** The rstd argument of rmsnormRows and its backward: float64 kept as a Float64Array. */
const f64 = (x: DeviceArray): Float64Array => values(x) as Float64Array
/** The attention and dispatch kernels' operands: float32 (their only dtype). */
const f32 = (x: DeviceArray): Float32Array => values(x) as Float32Array
const nullable = (x: DeviceArray | null): Float32Array | null => (x === null ? null : f32(x))
/** The host's dispatch kernels (the MoE permute runs on them only where they are built). */
const dispatch = (): DispatchKernels => {
  const k = dispatchKernels()
  if (k === undefined) throw new Error("sim: the native dispatch kernels are not built")
  return k
}
/** The host's cross-entropy row kernels (the loss runs on sim only where they are built). */
const crossEntropy = (): CrossEntropyKernels => {
  const k = crossEntropyKernels()
  if (k === undefined) throw new Error("sim: the native cross-entropy kernels are not built")
  return k
}
const host = (x: DeviceArray) => Kernels.forDType(x.dtype, reference)

const kernels: DeviceKernels = {
  name: "sim",
  matmul: (p) => host(p.a).matmul(onOperands(p, values(p.a), values(p.b), values(p.out))),
  groupedRows: (a, b, out, rows, k, n, transB) => host(a).groupedRows(values(a), values(b), values(out), rows, k, n, transB),
  groupedWeights: (a, c, out, rows, m, n, accumulate) => host(a).groupedWeights(values(a), values(c), values(out), rows, m, n, accumulate),
  gatherRows: (src, index, out, cols) => host(src).gatherRows(values(src), index, values(out), cols),
  scatterAddRows: (src, index, out, cols) => host(src).scatterAddRows(values(src), index, values(out), cols),
  softmaxRows: (x, out, rows, cols) => host(x).softmaxRows(values(x), values(out), rows, cols),
  rmsnormRows: (x, w, out, rstd, rows, cols, eps) => host(x).rmsnormRows(values(x), values(w), values(out), values(rstd), rows, cols, eps),
  swiglu: (gate, up, out) => host(gate).swiglu(values(gate), values(up), values(out)),
  rmsnormBackward: (x, w, g, rstd, rows, cols, dx, dw) =>
    host(x).rmsnormBackward(values(x), values(w), values(g), f64(rstd), rows, cols, optional(dx), dw === undefined ? undefined : f64(dw)),
  swigluBackward: (gate, up, g, dGate, dUp) => host(gate).swigluBackward(values(gate), values(up), values(g), optional(dGate), optional(dUp)),
  add: (a, b, out) => {
    if (out === a) AddInto.addInto(values(out), values(b))
    else AddInto.sumInto(values(out), values(a), values(b))
  },
  binary: (code, kind, a, b, out, width) => ElementwiseInto.binaryInto(code, kind, values(a), values(b), values(out), width),
  scale: (a, s, out) => ElementwiseInto.scaleInto(values(a), s, values(out)),
  sumRows: (g, out, width) => ElementwiseInto.sumRowsInto(values(g), values(out), width),
  sumSuffix: (g, out, width) => ElementwiseInto.sumSuffixInto(values(g), values(out), width),
  swapDims: (src, out, dims) => ElementwiseInto.onHost.swapDims(values(src), values(out), dims),
  crossEntropyRowMax: (x, rows, cols, max) => crossEntropy().rowMax(f32(x), rows, cols, f64(max)),
  crossEntropyRowSumExp: (x, rows, cols, max, sum) => crossEntropy().rowSumExp(f32(x), rows, cols, f64(max), f64(sum)),
  crossEntropyGrad: (x, rows, cols, logSum, targets, ignore, start, scale, d) => crossEntropy().grad(f32(x), rows, cols, f64(logSum), targets, ignore, start, scale, f32(d)),
  copy: (src, dst) => values(dst).set(values(src)),
  permuteRows: (src, cols, index, out, outCols, probs, experts, numExperts, probsOut) =>
    dispatch().permuteRows(f32(src), cols, index, f32(out), outCols, nullable(probs), experts, numExperts, nullable(probsOut)),
  combineRows: (rows, rowCols, index, weights, tokens, cols, out) => dispatch().combineRows(f32(rows), rowCols, index, nullable(weights), null, tokens, cols, f32(out)),
  combineBackward: (g, index, cols, weights, rows, gradRows, gradWeights) =>
    dispatch().combineBackward(f32(g), index, cols, f32(weights), f32(rows), nullable(gradRows), nullable(gradWeights)),
  rope: (src, cos, sin, out, dims, sign) => {
    rotateInto(values(src), values(out), [dims.b, dims.s, dims.heads, dims.d], { cos: f64(cos), sin: f64(sin), rows: dims.tableRows }, sign)
  },
  adamw: (w, g, m, v, s) => adamwInto(values(w), values(g), f32(m), f32(v), s),
  roundBf16: (src, dst) => Bf16Round.roundInto(f32(src), f32(dst)),
  copyRange: (src, srcOffset, dst, dstOffset, length) => {
    if (src.dtype !== dst.dtype || srcOffset + length > src.length || dstOffset + length > dst.length)
      throw new RangeError(`sim copyRange: [${srcOffset}, +${length}) of ${src.length} ${src.dtype} into [${dstOffset}, +${length}) of ${dst.length} ${dst.dtype}`)
    values(dst).set(values(src).subarray(srcOffset, srcOffset + length), dstOffset)
  },
  // The host's choice of bf16 products, on this device's arrays: the host's bits.
  bf16Products: {
    matmul: (p) => Bf16Matmul.hostProducts().matmul(onOperands(p, values(p.a), values(p.b), values(p.out))),
    groupedRows: (a, b, out, rows, k, n, transB) => Bf16Matmul.hostProducts().groupedRows(values(a), values(b), values(out), rows, k, n, transB),
    groupedWeights: (a, c, out, rows, m, n, accumulate) => Bf16Matmul.hostProducts().groupedWeights(values(a), values(c), values(out), rows, m, n, accumulate),
  },
  sumSquares: (x, out, at) => {
    f64(out)[at] = sumSquares(values(x))
  },
  attention: (p) => Cpu.attention({ q: f32(p.q), k: f32(p.k), v: f32(p.v), out: f32(p.out), lse: f64(p.lse), ...Cpu.attentionShape(p) }),
  attentionBackward: (p) =>
    Cpu.attentionBackward({
      q: f32(p.q),
      k: f32(p.k),
      v: f32(p.v),
      out: f32(p.out),
      lse: f64(p.lse),
      gradOut: f32(p.gradOut),
      gradQ: f32(p.gradQ),
      gradK: f32(p.gradK),
      gradV: f32(p.gradV),
      ...Cpu.attentionShape(p),
    }),
  gatedActivation: (gate, up, out, glu) => gatedInto(values(gate), values(up), values(out), glu),
  gatedActivationBackward: (gate, up, dy, dGate, dUp, glu) => gatedBackwardInto(values(gate), values(up), values(dy), optional(dGate), optional(dUp), glu),
  sinksFold: (out, lse, sinks, dims) => AttentionSinks.fold(values(out), f64(lse), values(sinks), dims),
  sinksGradient: (g, out, lse, sinks, dims, dz) => values(dz).set(AttentionSinks.gradient(values(g), values(out), f64(lse), values(sinks), dims)),
}

const make = (index: number): DeviceRuntime => {
  const transfers = noTransfers()
  // Its memory: the bytes of arrays made and not yet collected (a simulated device has no cache).
  const use = { allocatedBytes: 0, peakAllocatedBytes: 0 }
  const collected = new FinalizationRegistry<number>((bytes) => void (use.allocatedBytes -= bytes))
  const wrap = (storage: DType.Storage): SimArray => {
    const array: SimArray = { runtime, dtype: DType.of(storage), length: storage.length, values: storage }
    use.allocatedBytes += storage.byteLength
    use.peakAllocatedBytes = Math.max(use.peakAllocatedBytes, use.allocatedBytes)
    collected.register(array, storage.byteLength)
    return array
  }
  /** `array`'s values, checked against `into` and counted as one download. */
  const counted = (array: DeviceArray, into: DType.Storage): DType.Storage => {
    const from = values(array)
    if (from.length !== into.length || DType.of(from) !== DType.of(into)) throw new RangeError(`sim download: ${array.length} ${array.dtype} into ${into.length} ${DType.of(into)}`)
    transfers.downloads++
    transfers.downloadedBytes += from.byteLength
    return from
  }
  const runtime: DeviceRuntime = {
    device: Device.sim(index),
    allocate: (dtype, length) => wrap(DType.allocateUninitialized(dtype, length)),
    zeros: (dtype, length) => wrap(DType.allocate(dtype, length)),
    upload: (storage) => {
      transfers.uploads++
      transfers.uploadedBytes += storage.byteLength
      return wrap(DType.copyOf(storage))
    },
    download: (array, into) => {
      into.set(counted(array, into))
      transfers.waits++
    },
    // The values as they are now, delivered on a later turn of the event loop (as a GPU's copy
    // completes while the JS thread goes on): a reader that forgets to wait sees stale values.
    downloadAsync: (array, into) => {
      const now = DType.copyOf(counted(array, into))
      return new Promise((resolve) =>
        setImmediate(() => {
          into.set(now)
          resolve()
        }),
      )
    },
    // Every simulated device's memory is this process's: a peer's array is copied directly.
    copyFromPeer: (array) => wrap(DType.copyOf(values(array))),
    inPlace: (array) => ({ memory: "host", data: values(array) }),
    kernels,
    transfers,
    memory: () => ({ allocatedBytes: use.allocatedBytes, peakAllocatedBytes: use.peakAllocatedBytes, reservedBytes: use.allocatedBytes }),
  }
  return runtime
}

const runtimes = new Map<number, DeviceRuntime>()

/**
 * Simulated device `index` (one runtime per index per process).
 * @category constructors
 */
export const simulated = (index = 0): DeviceRuntime => {
  let r = runtimes.get(index)
  if (r === undefined) {
    r = make(index)
    runtimes.set(index, r)
  }
  return r
}
