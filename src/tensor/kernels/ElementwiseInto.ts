/**
 * ElementwiseInto: the element-wise kernels on host storage, with the broadcasts a kernel takes
 * (CpuElementwise's contract): a binary op (add, sub, mul, div) with b of a's length, a suffix of
 * a's shape or one value a row; a scale by a number; and the two sums that undo those broadcasts.
 * Long runs take the native kernels when the addon has them, short runs (and builds without
 * them) the loops: one IEEE operation per element and the sums in the same order and precision,
 * so the same bits either way. The host ops (tensor/ops/Elementwise.ts, Broadcast.reduceTo) and
 * the simulated device run these; CUDA has twins of the same contract.
 */
import { BroadcastKind, elementwiseKernels } from "../../native/CpuElementwise.js"
import type * as DType from "../DType.js"
import { nativeFrom } from "./AddInto.js"
import * as SwapDims from "./SwapDims.js"

/**
 * The binary ops, numbered as the kernels take them.
 * @category models
 */
export type OpCode = 0 | 1 | 2 | 3

/**
 * How b lines up with a: equal lengths, b repeating (`width` elements), one b per row of `width`.
 * @category models
 */
export type Kind = "same" | "suffix" | "rows"

/**
 * The element-wise kernel set over storage S (host storage here; device arrays in DeviceKernels),
 * the contract of the functions below.
 * @category models
 */
export interface ElementwiseKernels<S> {
  /** out = a op b with b broadcast as `kind` says (binaryInto). */
  readonly binary: (code: OpCode, kind: Kind, a: S, b: S, out: S, width: number) => void
  /** out = a * s (scaleInto). */
  readonly scale: (a: S, s: number, out: S) => void
  /** The sum of each row of `width` (sumRowsInto). */
  readonly sumRows: (g: S, out: S, width: number) => void
  /** The sums over i % width (sumSuffixInto). */
  readonly sumSuffix: (g: S, out: S, width: number) => void
  /** out = src with two dims exchanged (SwapDims.swapInto): a transpose. */
  readonly swapDims: (src: S, out: S, dims: SwapDims.SwapDims) => void
}

const apply = (code: OpCode, x: number, y: number): number => (code === 0 ? x + y : code === 1 ? x - y : code === 2 ? x * y : x / y)

/**
 * out[i] = a[i] op b[j]: j = i (same), i % width (suffix), floor(i / width) (rows).
 * @category kernels
 */
export const binaryInto = (code: OpCode, kind: Kind, a: DType.Storage, b: DType.Storage, out: DType.Storage, width: number): void => {
  const n = out.length
  const kernels = n >= nativeFrom ? elementwiseKernels() : undefined
  if (kernels !== undefined) {
    kernels.binary(code, BroadcastKind[kind], a, b, out, kind === "same" ? 0 : width)
    return
  }
  if (kind === "same") {
    for (let i = 0; i < n; i++) out[i] = apply(code, a[i] as number, b[i] as number)
  } else if (kind === "rows") {
    for (let r = 0; r < b.length; r++) {
      const y = b[r] as number
      for (let j = r * width; j < (r + 1) * width; j++) out[j] = apply(code, a[j] as number, y)
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = apply(code, a[i] as number, b[i % width] as number)
  }
}

/**
 * out[i] = a[i] * s, in double, rounded once to out's type.
 * @category kernels
 */
export const scaleInto = (a: DType.Storage, s: number, out: DType.Storage): void => {
  const kernels = a.length >= nativeFrom ? elementwiseKernels() : undefined
  if (kernels !== undefined) kernels.scale(a, s, out)
  else for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) * s
}

/**
 * out[r] = the double sum, in index order, of row r of g (rows of `width`).
 * @category kernels
 */
export const sumRowsInto = (g: DType.Storage, out: DType.Storage, width: number): void => {
  const kernels = g.length >= nativeFrom ? elementwiseKernels() : undefined
  if (kernels !== undefined) {
    kernels.sumRows(g, out, width)
    return
  }
  for (let r = 0; r < out.length; r++) {
    let acc = 0
    for (let j = 0; j < width; j++) acc += g[r * width + j] as number
    out[r] = acc
  }
}

/**
 * out[j] = the sum of g[i] over i % width == j, in index order, each add rounded to out's type.
 * @category kernels
 */
export const sumSuffixInto = (g: DType.Storage, out: DType.Storage, width: number): void => {
  const kernels = g.length >= nativeFrom ? elementwiseKernels() : undefined
  if (kernels !== undefined) {
    kernels.sumSuffix(g, out, width)
    return
  }
  out.fill(0)
  for (let i = 0; i < g.length; i++) out[i % width] = (out[i % width] as number) + (g[i] as number)
}

/**
 * The host's set: the functions above.
 * @category kernels
 */
export const onHost: ElementwiseKernels<DType.Storage> = { binary: binaryInto, scale: scaleInto, sumRows: sumRowsInto, sumSuffix: sumSuffixInto, swapDims: SwapDims.swapInto }
