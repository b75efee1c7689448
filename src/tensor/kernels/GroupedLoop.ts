/**
 * GroupedLoop: the grouped expert products (Kernels.groupedRows / groupedWeights) as one
 * `matmul` per group: the reference kernels' form, and the native set's where the addon predates
 * its grouped kernel. The native grouped kernel runs exactly these products, so both give the
 * same bits.
 */
import type * as DType from "../DType.js"
import type { MatmulArgs } from "./Kernels.js"

type Matmul = (args: MatmulArgs) => void

/**
 * out[group g] = a[group g] x op(b[g]): a [N, k], b [G, k, n] ([G, n, k] with transB), out [N, n].
 * @category combinators
 */
export const groupedRows =
  (matmul: Matmul) =>
  (a: DType.Storage, b: DType.Storage, out: DType.Storage, rows: Int32Array, k: number, n: number, transB: boolean): void => {
    let start = 0
    for (let g = 0; g < rows.length; g++) {
      const r = rows[g] as number
      if (r > 0)
        matmul({
          a: a.subarray(start * k, (start + r) * k),
          b: b.subarray(g * k * n, (g + 1) * k * n),
          out: out.subarray(start * n, (start + r) * n),
          batch: 1,
          m: r,
          n,
          k,
          transA: false,
          transB,
          strideA: 0,
          strideB: 0,
          accumulate: false,
        })
      start += r
    }
  }

/**
 * out[g] = a[group g]^T x c[group g] (+= with accumulate): a [N, m], c [N, n], out [G, m, n]; an
 * empty group's out[g] is zeros, or unchanged when accumulating.
 * @category combinators
 */
export const groupedWeights =
  (matmul: Matmul) =>
  (a: DType.Storage, c: DType.Storage, out: DType.Storage, rows: Int32Array, m: number, n: number, accumulate: boolean): void => {
    let start = 0
    for (let g = 0; g < rows.length; g++) {
      const r = rows[g] as number
      if (r === 0) {
        if (!accumulate) out.fill(0, g * m * n, (g + 1) * m * n)
        continue
      }
      matmul({
        a: a.subarray(start * m, (start + r) * m),
        b: c.subarray(start * n, (start + r) * n),
        out: out.subarray(g * m * n, (g + 1) * m * n),
        batch: 1,
        m,
        n,
        k: r,
        transA: true,
        transB: false,
        strideA: 0,
        strideB: 0,
        accumulate,
      })
      start += r
    }
  }
