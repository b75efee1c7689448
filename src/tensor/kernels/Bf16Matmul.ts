/**
 * Bf16Matmul: which kernel multiplies in the forward of a bf16 run.
 *
 * On a bf16 tape (Tape.ts) the forward's matrix products take bf16 values (every op output is
 * rounded, parameters enter as bf16 copies) in float32 storage. Where the CPU has AVX512-BF16
 * they run on the native bf16 GEMM (cuda/src/kernels/bf16_matmul.h: VDPBF16PS, fp32
 * accumulation, about twice the fp32 kernel's multiply-adds per instruction); elsewhere on the
 * float32 kernel, the conversion path: the product of two bf16 values is exact in fp32, so
 * both sum the same exact products in fp32 and differ only in summation order (and in the bf16
 * GEMM's flush of denormals).
 *
 * The rule, per forward product: float32 inputs, a tape that rounds now (`roundsToBf16`: not in
 * a backward pass, not in `fullPrecision`, so the router's fp32 region keeps fp32), native
 * kernels in use (not PLEAT_KERNELS=reference), the kernel present, and the mode "auto".
 * Backward products and fp32 tapes never take it, so fp32 runs stay bit-identical.
 * PLEAT_BF16_MATMUL=off (read at load) or `setMode("off")` forces the float32 kernel.
 */
import * as CpuBf16 from "../../native/CpuBf16.js"
import type * as Tensor from "../Tensor.js"
import * as Kernels from "./Kernels.js"

/**
 * "auto": the bf16 GEMM where the rule allows; "off": always the float32 kernel.
 * @category models
 */
export type Mode = "auto" | "off"

const kernel = CpuBf16.bf16MatmulKernel()
let mode: Mode = process.env.PLEAT_BF16_MATMUL === "off" ? "off" : "auto"
let used = 0

const counted: CpuBf16.Bf16MatmulKernel | undefined =
  kernel === undefined
    ? undefined
    : {
        sync: (p) => {
          used++
          kernel.sync(p)
        },
        async: (p) => {
          used++
          return kernel.async(p)
        },
      }

/**
 * Sets the mode (process-wide) and gives the previous one.
 * @category configuration
 */
export const setMode = (next: Mode): Mode => {
  const before = mode
  mode = next
  return before
}

/**
 * Whether the bf16 GEMM can run here: addon built with it, CPU with AVX512-BF16.
 * @category guards
 */
export const available = (): boolean => kernel !== undefined

/**
 * How many products the bf16 GEMM has computed in this process (for tests and logs).
 * @category getters
 */
export const calls = (): number => used

/**
 * The bf16 GEMM for the forward product of `a` and `b` when the rule of the file header
 * allows it, undefined when the float32 kernel must run.
 * @category mapping
 */
export const forForward = (a: Tensor.Tensor, b: Tensor.Tensor): CpuBf16.Bf16MatmulKernel | undefined => {
  if (mode === "off" || counted === undefined || Kernels.native() === undefined) return undefined
  if (!(a.data instanceof Float32Array) || !(b.data instanceof Float32Array)) return undefined
  return (a.tape ?? b.tape)?.roundsToBf16 === true ? counted : undefined
}
