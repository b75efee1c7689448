/**
 * Reference kernels in TypeScript: plain loops, any dtype, accumulation in float64.
 *
 * These are the oracle for the native kernels and the float64 path of exact checks, so they
 * favour obviousness over speed.
 */
import type * as DType from "../DType.js"
import * as GroupedLoop from "./GroupedLoop.js"
import type { Kernels, MatmulArgs } from "./Kernels.js"

const matmul = (p: MatmulArgs): void => {
  const { a, b, out, batch, m, n, k, transA, transB, strideA, strideB, accumulate } = p
  const row = new Float64Array(n)
  for (let bi = 0; bi < batch; bi++) {
    const oa = bi * strideA
    const ob = bi * strideB
    const oc = bi * m * n
    for (let i = 0; i < m; i++) {
      row.fill(0)
      for (let kk = 0; kk < k; kk++) {
        const av = a[oa + (transA ? kk * m + i : i * k + kk)] as number
        if (transB) {
          for (let j = 0; j < n; j++) row[j] = (row[j] as number) + av * (b[ob + j * k + kk] as number)
        } else {
          const base = ob + kk * n
          for (let j = 0; j < n; j++) row[j] = (row[j] as number) + av * (b[base + j] as number)
        }
      }
      const base = oc + i * n
      if (accumulate) for (let j = 0; j < n; j++) out[base + j] = (out[base + j] as number) + (row[j] as number)
      else for (let j = 0; j < n; j++) out[base + j] = row[j] as number
    }
  }
}

const gatherRows = (src: DType.Storage, index: Int32Array, out: DType.Storage, cols: number): void => {
  for (let i = 0; i < index.length; i++) {
    const s = (index[i] as number) * cols
    out.set(src.subarray(s, s + cols), i * cols)
  }
}

const scatterAddRows = (src: DType.Storage, index: Int32Array, out: DType.Storage, cols: number): void => {
  for (let i = 0; i < index.length; i++) {
    const d = (index[i] as number) * cols
    for (let j = 0; j < cols; j++) out[d + j] = (out[d + j] as number) + (src[i * cols + j] as number)
  }
}

const softmaxRows = (x: DType.Storage, out: DType.Storage, rows: number, cols: number): void => {
  // Exponentials are kept in float64 so that a float32 row is rounded once, at the end.
  const e = new Float64Array(cols)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    let max = Number.NEGATIVE_INFINITY
    for (let j = 0; j < cols; j++) {
      const v = x[base + j] as number
      if (v > max) max = v
    }
    let sum = 0
    for (let j = 0; j < cols; j++) {
      const v = Math.exp((x[base + j] as number) - max)
      e[j] = v
      sum += v
    }
    for (let j = 0; j < cols; j++) out[base + j] = (e[j] as number) / sum
  }
}

const rmsnormRows = (x: DType.Storage, weight: DType.Storage, out: DType.Storage, rstdOut: DType.Storage, rows: number, cols: number, eps: number): void => {
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    let ss = 0
    for (let j = 0; j < cols; j++) {
      const v = x[base + j] as number
      ss += v * v
    }
    const rstd = 1 / Math.sqrt((cols === 0 ? 0 : ss / cols) + eps)
    rstdOut[r] = rstd
    for (let j = 0; j < cols; j++) out[base + j] = (x[base + j] as number) * rstd * (weight[j] as number)
  }
}

const rmsnormBackward = (
  x: DType.Storage,
  w: DType.Storage,
  gy: DType.Storage,
  rstd: Float64Array,
  rows: number,
  cols: number,
  dx: DType.Storage | undefined,
  dw: Float64Array | undefined,
): void => {
  dw?.fill(0)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    const s = rstd[r] as number
    if (dx !== undefined) {
      let dot = 0
      for (let j = 0; j < cols; j++) dot += (gy[base + j] as number) * (w[j] as number) * (x[base + j] as number)
      const c = (s * s * dot) / cols
      for (let j = 0; j < cols; j++) dx[base + j] = s * ((gy[base + j] as number) * (w[j] as number) - (x[base + j] as number) * c)
    }
    if (dw !== undefined) for (let j = 0; j < cols; j++) dw[j] = (dw[j] as number) + (gy[base + j] as number) * (x[base + j] as number) * s
  }
}

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))

const swiglu = (gate: DType.Storage, up: DType.Storage, out: DType.Storage): void => {
  for (let i = 0; i < out.length; i++) {
    const g = gate[i] as number
    out[i] = g * sigmoid(g) * (up[i] as number)
  }
}

const swigluBackward = (gate: DType.Storage, up: DType.Storage, grad: DType.Storage, dGate: DType.Storage | undefined, dUp: DType.Storage | undefined): void => {
  for (let i = 0; i < grad.length; i++) {
    const x = gate[i] as number
    const s = sigmoid(x)
    const g = grad[i] as number
    if (dGate !== undefined) dGate[i] = g * (up[i] as number) * s * (1 + x * (1 - s))
    if (dUp !== undefined) dUp[i] = g * x * s
  }
}

/**
 * The reference kernel set.
 * @category constructors
 */
export const reference: Kernels = {
  name: "reference",
  matmul,
  groupedRows: GroupedLoop.groupedRows(matmul),
  groupedWeights: GroupedLoop.groupedWeights(matmul),
  gatherRows,
  scatterAddRows,
  softmaxRows,
  rmsnormRows,
  rmsnormBackward,
  swiglu,
  swigluBackward,
}
