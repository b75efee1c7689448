/**
 * SumSquares: the sum of x[i]^2 in float64 in one fixed order (the gradient norm, the check for
 * non-finite gradients):
 *
 *   lane j (0..7) sums x[i]^2 for i = j, j + 8, ... in increasing i
 *   result = ((lane0 + lane1) + (lane2 + lane3)) + ((lane4 + lane5) + (lane6 + lane7))
 *
 * The native kernel (cuda/src/kernels/sum_squares.h, vectorised over the eight lanes) and the
 * loop below give the same bits, so the order never depends on the machine, the thread count
 * or whether the addon is built. Long runs take the kernel when the native kernels are in use.
 */
import * as CpuOptional from "../../native/CpuOptional.js"
import type * as DType from "../DType.js"
import { nativeFrom } from "./AddInto.js"
import * as Kernels from "./Kernels.js"

const native = Kernels.native() === undefined ? undefined : CpuOptional.sumSquaresKernel()
const nativeEach = Kernels.native() === undefined ? undefined : CpuOptional.sumSquaresEachKernel()

/**
 * The loop: the specification of the order.
 * @category kernels
 */
export const sumSquaresLoop = (x: DType.Storage): number => {
  const acc = [0, 0, 0, 0, 0, 0, 0, 0]
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number
    acc[i & 7] = (acc[i & 7] as number) + v * v
  }
  const [a0, a1, a2, a3, a4, a5, a6, a7] = acc as [number, number, number, number, number, number, number, number]
  // ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)): + is left-associative.
  return a0 + a1 + (a2 + a3) + (a4 + a5 + (a6 + a7))
}

/**
 * The sum of squares of `x` (see the file header).
 * @category kernels
 */
export const sumSquares = (x: DType.Storage): number => (native !== undefined && x.length >= nativeFrom ? native(x) : sumSquaresLoop(x))

/**
 * The sum of squares of each of `xs`, each in the order above (the same bits as `sumSquares` of
 * each): with the native kernels in use, the arrays spread over the kernels' pool, one array a
 * task (a rank's gradients: one array a parameter, which one thread would read alone).
 * @category kernels
 */
export const sumSquaresEach = (xs: ReadonlyArray<DType.Storage>): ReadonlyArray<number> => (nativeEach !== undefined ? Array.from(nativeEach(xs)) : xs.map(sumSquares))
