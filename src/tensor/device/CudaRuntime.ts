/**
 * CudaRuntime: GPU memory and kernels for tensors on `cuda:0`, the GPU this process uses (device
 * 0, or the one runtime/ProcessGpu.ts selected: the launcher's local rank modulo the GPUs).
 *
 * Arrays are the CUDA addon's device arrays (native/CudaArrays.ts: blocks of its caching
 * allocator, freed when collected). float32 products (matmul, the grouped expert products and
 * their weight gradients) run on cuBLAS (fp32, no TF32); the embedding gather, RMSNorm, SwiGLU
 * and their backwards, the scatter-add of rows (the embedding's gradient), attention and its backward, RoPE, and the MoE permute and unpermute and its
 * backward, the element-wise binary ops with their broadcasts, scales and the sums that undo
 * broadcasts, transposes, the vocabulary-parallel loss's row kernels, AdamW and the sum of squares of the
 * optimizer, a bf16 run's rounding, the gated activation with Megatron-Core's options and the
 * attention sinks (GPT-OSS's), on pleat's CUDA kernels; sums on axpy. A bf16 run's
 * products are cuBLAS bf16 GEMMs (tensor cores) on its operands rounded to bfloat16, fp32 sums.
 * Each has its CPU twin's contract and is checked against it by scripts/device-check (its
 * tolerances there). Float64 operands
 * run on the host kernels over copies (downloaded, run, uploaded back: correct, and counted in
 * `transfers`), until their CUDA twins are wired here.
 *
 * Needs the CUDA addon with device arrays, a GPU and cuBLAS (CublasLibrary's search); otherwise
 * `cudaRuntime` says which is missing.
 */
import * as Cpu from "../../native/Cpu.js"
import * as CublasLibrary from "../../native/CublasLibrary.js"
import * as Cuda from "../../native/Cuda.js"
import { BroadcastKind } from "../../native/CpuElementwise.js"
import type { CudaArraysAddon, DeviceHandle } from "../../native/CudaArrays.js"
import { cudaArrays } from "../../native/CudaArrays.js"
import * as Device from "../Device.js"
import * as DType from "../DType.js"
import { adamwInto } from "../kernels/AdamwInto.js"
import * as AttentionSinks from "../kernels/AttentionSinks.js"
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
import { downloaded, noTransfers } from "./DeviceRuntime.js"

/** A CUDA device array: the addon's handle. */
interface CudaArray extends DeviceArray {
  readonly handle: DeviceHandle
}

const handle = (x: DeviceArray): DeviceHandle => (x as CudaArray).handle
const optional = (x: DeviceArray | undefined): DeviceHandle | null => (x === undefined ? null : handle(x))
const nullable = (x: DeviceArray | null): DeviceHandle | null => (x === null ? null : handle(x))
const allF32 = (...xs: ReadonlyArray<DeviceArray | undefined>): boolean => xs.every((x) => x === undefined || x.dtype === "float32")

/**
 * The device kernels: CUDA where it has the kernel and the operands are float32, the host's
 * kernels over copies otherwise (`viaHost`).
 */
const kernelsOf = (a: CudaArraysAddon, runtime: () => DeviceRuntime): DeviceKernels => {
  /**
   * Runs `run` on host copies of `arrays` (downloaded; undefined stays undefined) and uploads
   * each back into its device array (the kernel may have written it).
   */
  const viaHost = (arrays: ReadonlyArray<DeviceArray | undefined>, run: (host: ReadonlyArray<DType.Storage>) => void): void => {
    const host = arrays.map((x) => (x === undefined ? undefined : downloaded(x)))
    run(host as ReadonlyArray<DType.Storage>)
    const transfers = runtime().transfers
    arrays.forEach((x, i) => {
      if (x === undefined) return
      const h = host[i] as DType.Storage
      a.deviceArrayCopyIn(handle(x), h)
      transfers.uploads++
      transfers.uploadedBytes += h.byteLength
    })
  }
  const host = (x: DeviceArray) => Kernels.forDType(x.dtype, reference)
  const kernels: Omit<DeviceKernels, "bf16Products"> = {
    name: "cuda",
    matmul: (p) =>
      allF32(p.a, p.b, p.out)
        ? a.matmul(handle(p.a), handle(p.b), handle(p.out), p.batch, p.m, p.n, p.k, p.transA, p.transB, p.strideA, p.strideB, p.accumulate)
        : viaHost([p.a, p.b, p.out], ([x, y, out]) => host(p.a).matmul(onOperands(p, x as DType.Storage, y as DType.Storage, out as DType.Storage))),
    gatherRows: (src, index, out, cols) =>
      allF32(src, out)
        ? a.gatherRows(handle(src), index, handle(out), cols)
        : viaHost([src, out], ([s, o]) => host(src).gatherRows(s as DType.Storage, index, o as DType.Storage, cols)),
    rmsnormRows: (x, w, out, rstd, rows, cols, eps) =>
      allF32(x, w, out) && rstd.dtype === "float64"
        ? a.rmsnormRows(handle(x), handle(w), handle(out), handle(rstd), rows, cols, eps)
        : viaHost([x, w, out, rstd], ([hx, hw, ho, hr]) =>
            host(x).rmsnormRows(hx as DType.Storage, hw as DType.Storage, ho as DType.Storage, hr as DType.Storage, rows, cols, eps),
          ),
    swiglu: (gate, up, out) =>
      allF32(gate, up, out)
        ? a.swiglu(handle(gate), handle(up), handle(out))
        : viaHost([gate, up, out], ([g, u, o]) => host(gate).swiglu(g as DType.Storage, u as DType.Storage, o as DType.Storage)),
    rmsnormBackward: (x, w, g, rstd, rows, cols, dx, dw) =>
      allF32(x, w, g, dx)
        ? a.rmsnormBackward(handle(x), handle(w), handle(g), handle(rstd), rows, cols, optional(dx), optional(dw))
        : viaHost([x, w, g, rstd, dx, dw], ([hx, hw, hg, hr, hdx, hdw]) =>
            host(x).rmsnormBackward(hx as DType.Storage, hw as DType.Storage, hg as DType.Storage, hr as Float64Array, rows, cols, hdx, hdw as Float64Array | undefined),
          ),
    swigluBackward: (gate, up, g, dGate, dUp) =>
      allF32(gate, up, g, dGate, dUp)
        ? a.swigluBackward(handle(gate), handle(up), handle(g), optional(dGate), optional(dUp))
        : viaHost([gate, up, g, dGate, dUp], ([hg, hu, hgr, hdg, hdu]) => host(gate).swigluBackward(hg as DType.Storage, hu as DType.Storage, hgr as DType.Storage, hdg, hdu)),
    groupedRows: (x, b, out, rows, k, n, transB) =>
      allF32(x, b, out)
        ? a.groupedRows(handle(x), handle(b), handle(out), rows, k, n, transB)
        : viaHost([x, b, out], ([hx, hb, ho]) => host(x).groupedRows(hx as DType.Storage, hb as DType.Storage, ho as DType.Storage, rows, k, n, transB)),
    groupedWeights: (x, c, out, rows, m, n, accumulate) =>
      allF32(x, c, out)
        ? a.groupedWeights(handle(x), handle(c), handle(out), rows, m, n, accumulate)
        : viaHost([x, c, out], ([hx, hc, ho]) => host(x).groupedWeights(hx as DType.Storage, hc as DType.Storage, ho as DType.Storage, rows, m, n, accumulate)),
    scatterAddRows: (src, index, out, cols) =>
      allF32(src, out)
        ? a.scatterAddRows(handle(src), index, handle(out), cols)
        : viaHost([src, out], ([s, o]) => host(src).scatterAddRows(s as DType.Storage, index, o as DType.Storage, cols)),
    softmaxRows: (x, out, rows, cols) =>
      allF32(x, out)
        ? a.softmaxRows(handle(x), handle(out), rows, cols)
        : viaHost([x, out], ([hx, ho]) => host(x).softmaxRows(hx as DType.Storage, ho as DType.Storage, rows, cols)),
    attention: (p) => a.attention(handle(p.q), handle(p.k), handle(p.v), handle(p.out), handle(p.lse), ...Cpu.attentionDims(p)),
    attentionBackward: (p) =>
      a.attentionBackward(
        handle(p.q),
        handle(p.k),
        handle(p.v),
        handle(p.out),
        handle(p.gradOut),
        handle(p.lse),
        handle(p.gradQ),
        handle(p.gradK),
        handle(p.gradV),
        ...Cpu.attentionDims(p),
      ),
    crossEntropyRowMax: (x, rows, cols, max) => a.crossEntropyRowMax(handle(x), rows, cols, handle(max)),
    crossEntropyRowSumExp: (x, rows, cols, max, sum) => a.crossEntropyRowSumExp(handle(x), rows, cols, handle(max), handle(sum)),
    crossEntropyGrad: (x, rows, cols, logSum, targets, ignore, start, scale, d) =>
      a.crossEntropyGrad(handle(x), rows, cols, handle(logSum), targets, ignore, start, scale, handle(d)),
    copy: (src, dst) =>
      src.dtype === dst.dtype
        ? a.deviceArrayCopy(handle(dst), handle(src))
        : src.dtype === "float64" && dst.dtype === "float32"
          ? a.narrowToFloat32(handle(src), handle(dst))
          : viaHost([src, dst], ([hs, hd]) => (hd as DType.Storage).set(hs as DType.Storage)),
    permuteRows: (src, cols, index, out, outCols, probs, experts, numExperts, probsOut) =>
      a.permuteRows(handle(src), cols, index, handle(out), outCols, nullable(probs), experts, numExperts, nullable(probsOut)),
    combineRows: (rows, rowCols, index, weights, tokens, cols, out) => a.combineRows(handle(rows), rowCols, index, nullable(weights), tokens, cols, handle(out)),
    combineBackward: (g, index, cols, weights, rows, gradRows, gradWeights) =>
      a.combineBackward(handle(g), index, cols, handle(weights), handle(rows), nullable(gradRows), nullable(gradWeights)),
    rope: (src, cos, sin, out, d, sign) =>
      allF32(src, out)
        ? a.ropeRotate(handle(src), handle(cos), handle(sin), handle(out), d.b, d.s, d.heads, d.d, d.tableRows, sign)
        : viaHost([src, cos, sin, out], ([hs, hc, hn, ho]) =>
            rotateInto(hs as DType.Storage, ho as DType.Storage, [d.b, d.s, d.heads, d.d], { cos: hc as Float64Array, sin: hn as Float64Array, rows: d.tableRows }, sign),
          ),
    binary: (code, kind, x, y, out, width) =>
      // Nothing to write (a width of 0 is no broadcast the binding takes).
      out.length === 0
        ? undefined
        : allF32(x, y, out)
          ? a.elementwiseBinary(code, BroadcastKind[kind], handle(x), handle(y), handle(out), kind === "same" ? 0 : width)
          : viaHost([x, y, out], ([hx, hy, ho]) => ElementwiseInto.binaryInto(code, kind, hx as DType.Storage, hy as DType.Storage, ho as DType.Storage, width)),
    scale: (x, s, out) =>
      allF32(x, out) ? a.elementwiseScale(handle(x), s, handle(out)) : viaHost([x, out], ([hx, ho]) => ElementwiseInto.scaleInto(hx as DType.Storage, s, ho as DType.Storage)),
    // Rows of no elements sum to 0; a suffix of none has nothing to write.
    sumRows: (g, out, width) =>
      width === 0
        ? a.deviceArrayZero(handle(out))
        : allF32(g, out)
          ? a.sumRows(handle(g), handle(out), width)
          : viaHost([g, out], ([hg, ho]) => ElementwiseInto.sumRowsInto(hg as DType.Storage, ho as DType.Storage, width)),
    sumSuffix: (g, out, width) =>
      width === 0
        ? undefined
        : allF32(g, out)
          ? a.sumSuffix(handle(g), handle(out), width)
          : viaHost([g, out], ([hg, ho]) => ElementwiseInto.sumSuffixInto(hg as DType.Storage, ho as DType.Storage, width)),
    adamw: (w, g, m, v, s) =>
      allF32(w, g, m, v)
        ? a.adamw(handle(w), handle(g), handle(m), handle(v), s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay)
        : viaHost([w, g, m, v], ([hw, hg, hm, hv]) => adamwInto(hw as DType.Storage, hg as DType.Storage, hm as Float32Array, hv as Float32Array, s)),
    sumSquares: (x, out, at) =>
      x.dtype === "float32" && out.dtype === "float64"
        ? a.sumSquares(handle(x), handle(out), at)
        : viaHost([x, out], ([hx, ho]) => {
            ;(ho as DType.Storage)[at] = sumSquares(hx as DType.Storage)
          }),
    swapDims: (src, out, d) =>
      allF32(src, out)
        ? a.swapDims(handle(src), handle(out), d.a, d.n0, d.b, d.n1, d.c)
        : viaHost([src, out], ([hs, ho]) => ElementwiseInto.onHost.swapDims(hs as DType.Storage, ho as DType.Storage, d)),
    add: (x, y, out) =>
      allF32(x, y, out)
        ? a.deviceArrayAdd(handle(x), handle(y), handle(out))
        : viaHost([x, y, out], ([hx, hy, ho]) => AddInto.sumInto(ho as DType.Storage, hx as DType.Storage, hy as DType.Storage)),
    copyRange: (src, srcOffset, dst, dstOffset, length) => a.deviceArrayCopyRange(handle(dst), dstOffset, handle(src), srcOffset, length),
    roundBf16: (src, dst) =>
      allF32(src, dst) ? a.roundBf16(handle(src), handle(dst)) : viaHost([src, dst], ([hs, hd]) => Bf16Round.roundInto(hs as Float32Array, hd as Float32Array)),
    gatedActivation: (gate, up, out, glu) =>
      allF32(gate, up, out)
        ? a.gatedActivation(handle(gate), handle(up), handle(out), glu.alpha, glu.offset, glu.limit ?? null)
        : viaHost([gate, up, out], ([hg, hu, ho]) => gatedInto(hg as DType.Storage, hu as DType.Storage, ho as DType.Storage, glu)),
    gatedActivationBackward: (gate, up, dy, dGate, dUp, glu) =>
      allF32(gate, up, dy, dGate, dUp)
        ? a.gatedActivationBackward(handle(gate), handle(up), handle(dy), optional(dGate), optional(dUp), glu.alpha, glu.offset, glu.limit ?? null)
        : viaHost([gate, up, dy, dGate, dUp], ([hg, hu, hy, hdg, hdu]) => gatedBackwardInto(hg as DType.Storage, hu as DType.Storage, hy as DType.Storage, hdg, hdu, glu)),
    sinksFold: (out, lse, sinks, d) =>
      allF32(out, sinks) && lse.dtype === "float64"
        ? a.attentionSinksFold(handle(out), handle(lse), handle(sinks), d.b, d.sq, d.hq, d.dv)
        : viaHost([out, lse, sinks], ([ho, hl, hs]) => AttentionSinks.fold(ho as DType.Storage, hl as Float64Array, hs as DType.Storage, d)),
    sinksGradient: (g, out, lse, sinks, d, dz) =>
      allF32(g, out, sinks, dz) && lse.dtype === "float64"
        ? a.attentionSinksGradient(handle(g), handle(out), handle(lse), handle(sinks), d.b, d.sq, d.hq, d.dv, handle(dz))
        : viaHost([dz], ([hz]) => (hz as DType.Storage).set(AttentionSinks.gradient(downloaded(g), downloaded(out), downloaded(lse) as Float64Array, downloaded(sinks), d))),
  }
  // A bf16 run's products: bf16 GEMMs (tensor cores) on its operands rounded to bfloat16, fp32
  // accumulation and results, as the host's bf16 GEMM computes them (in cuBLAS's order).
  const bf16Products: DeviceKernels["bf16Products"] = {
    matmul: (p) =>
      allF32(p.a, p.b, p.out)
        ? a.matmul(handle(p.a), handle(p.b), handle(p.out), p.batch, p.m, p.n, p.k, p.transA, p.transB, p.strideA, p.strideB, p.accumulate, true)
        : kernels.matmul(p),
    groupedRows: (x, b, out, rows, k, n, transB) =>
      allF32(x, b, out) ? a.groupedRows(handle(x), handle(b), handle(out), rows, k, n, transB, true) : kernels.groupedRows(x, b, out, rows, k, n, transB),
    groupedWeights: (x, c, out, rows, m, n, accumulate) =>
      allF32(x, c, out) ? a.groupedWeights(handle(x), handle(c), handle(out), rows, m, n, accumulate, true) : kernels.groupedWeights(x, c, out, rows, m, n, accumulate),
  }
  return { bf16Products, ...kernels }
}

let made: { readonly runtime: DeviceRuntime } | { readonly why: string } | undefined

/** cuBLAS from the first candidate that loads, or why none did. */
const loadCublas = (): string | undefined => {
  const tried: Array<string> = []
  for (const path of CublasLibrary.candidates(process.env)) {
    const loaded = Cuda.loadCublas(path)
    if (loaded.loaded) return undefined
    tried.push(`${path}: ${loaded.error}`)
  }
  return `cuBLAS did not load (${tried.slice(0, 3).join("; ")}); set PLEAT_CUBLAS_LIB to libcublas.so`
}

const make = (): { readonly runtime: DeviceRuntime } | { readonly why: string } => {
  const status = Cuda.cudaStatus()
  if (!status.available) return { why: `${status.reason}: ${status.detail}` }
  const arrays = cudaArrays()
  if ("why" in arrays) return { why: `the CUDA addon has no device arrays (rebuild it: npm run build:native): ${arrays.why}` }
  const cublas = loadCublas()
  if (cublas !== undefined) return { why: cublas }
  const a = arrays.addon
  const transfers = noTransfers()
  const wrap = (dtype: DType.DType, length: number): CudaArray => {
    const h = a.deviceArrayNew(length, dtype)
    if (h === null) throw new RangeError(`cuda:0 is out of memory for ${length} ${dtype} elements (${length * DType.bytesPer(dtype)} bytes)`)
    return { runtime, dtype, length, handle: h }
  }
  const runtime: DeviceRuntime = {
    device: Device.cuda(0),
    allocate: wrap,
    zeros: (dtype, length) => {
      const x = wrap(dtype, length)
      a.deviceArrayZero(x.handle)
      return x
    },
    upload: (host) => {
      const x = wrap(DType.of(host), host.length)
      a.deviceArrayCopyIn(x.handle, host)
      transfers.uploads++
      transfers.uploadedBytes += host.byteLength
      return x
    },
    download: (x, into) => {
      a.deviceArrayCopyOut(handle(x), into)
      transfers.downloads++
      transfers.downloadedBytes += into.byteLength
      transfers.waits++
    },
    downloadAsync: (x, into) => {
      const done = a.deviceArrayCopyOutAsync(handle(x), into as Float32Array | Float64Array)
      transfers.downloads++
      transfers.downloadedBytes += into.byteLength
      return done
    },
    inPlace: (x) => ({ memory: "cuda", handle: handle(x) }),
    kernels: kernelsOf(a, () => runtime),
    transfers,
    memory: () => {
      const stats = Cuda.deviceMemory().stats()
      return { allocatedBytes: stats.allocatedBytes, peakAllocatedBytes: stats.peakAllocatedBytes, reservedBytes: stats.reservedBytes }
    },
  }
  return { runtime }
}

/**
 * The runtime of GPU `index` (0: this process's GPU), or why there is none.
 * @category constructors
 */
export const cudaRuntime = (index: number): { readonly runtime: DeviceRuntime } | { readonly why: string } => {
  if (index !== 0) return { why: `a process computes on its one GPU, cuda:0 (got cuda:${index}); pick it with CUDA_VISIBLE_DEVICES or the launcher's local rank` }
  made ??= make()
  return made
}
