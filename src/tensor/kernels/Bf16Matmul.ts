/**
 * Bf16Matmul: which kernel multiplies in a bf16 run, forward and backward.
 *
 * On a bf16 tape (Tape.ts) the forward's matrix products take bf16 values (every op output is
 * rounded, parameters enter as bf16 copies) in float32 storage. Where the CPU has AVX512-BF16
 * they run on the native bf16 GEMM (cuda/src/kernels/bf16_matmul.h: VDPBF16PS, fp32
 * accumulation, about twice the fp32 kernel's multiply-adds per instruction); elsewhere on the
 * float32 kernel, the conversion path: the product of two bf16 values is exact in fp32, so
 * both sum the same exact products in fp32 and differ only in summation order (and in the bf16
 * GEMM's flush of denormals).
 *
 * The forward rule, per product: float32 inputs, a tape that rounds now (`roundsToBf16`: not in
 * a backward pass, not in `fullPrecision`, so the router's fp32 region keeps fp32), native
 * kernels in use (not PLEAT_KERNELS=reference), the kernel present, and the mode "auto".
 *
 * The backward products of a product recorded where the tape rounded (`roundsProduct`) take the
 * incoming gradient rounded to bf16, as Megatron's bf16 activation gradients are, with fp32
 * accumulation and fp32 results (gradients stay fp32 storage). Under the same conditions as the
 * forward they run on the bf16 GEMM, which rounds the gradient as it packs it; otherwise the
 * gradient is rounded first (Bf16Round) and the float32 kernel runs: the same exact products.
 * fp32 tapes and fullPrecision regions never round, so fp32 runs stay bit-identical.
 * PLEAT_BF16_MATMUL=off (read at load) or `setMode("off")` forces the float32 kernel.
 *
 * `hostProducts` is this choice as a kernel set (matmul and the grouped expert products) over
 * host storage: what the host runs, and what the simulated device runs on its arrays, so that a
 * bf16 run on `sim` has the host's bits. A CUDA device runs its own (DeviceKernels.bf16Products).
 */
import * as CpuBf16 from "../../native/CpuBf16.js"
import * as DType from "../DType.js"
import type * as Tensor from "../Tensor.js"
import * as Bf16Round from "./Bf16Round.js"
import * as GroupedLoop from "./GroupedLoop.js"
import * as Kernels from "./Kernels.js"
import { reference } from "./Reference.js"

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
 * The bf16 products on the host's storage (see the header): the bf16 GEMM (one per expert for
 * the grouped ones, GroupedLoop) where it is usable, the float32 kernels otherwise. Operands are
 * bf16 values, a backward's gradient included (`backwardOperands` rounds it for the float32
 * kernels; the bf16 GEMM rounds it as it packs, which is the same).
 * @category kernels
 */
export const hostProducts = (): Kernels.Products<DType.Storage> => {
  const kernel = usable()
  if (kernel === undefined) return Kernels.forDType("float32", reference)
  const matmul = (p: Kernels.MatmulArgs<DType.Storage>) => kernel.sync(p as Parameters<CpuBf16.Bf16MatmulKernel["sync"]>[0])
  return { matmul, groupedRows: GroupedLoop.groupedRows(matmul), groupedWeights: GroupedLoop.groupedWeights(matmul) }
}

/**
 * The bf16 GEMM for the forward product of `a` and `b` when the rule of the file header
 * allows it, undefined when the float32 kernel must run.
 * @category mapping
 */
export const forForward = (a: Tensor.Tensor, b: Tensor.Tensor): CpuBf16.Bf16MatmulKernel | undefined => (roundsProduct(a, b) ? usable() : undefined)

/** The bf16 GEMM when mode, native kernels and the CPU allow it. */
const usable = (): CpuBf16.Bf16MatmulKernel | undefined => (mode === "off" || Kernels.native() === undefined ? undefined : counted)

/**
 * Whether a product of `a` and `b` recorded now is a bf16 product: float32 inputs on a tape that
 * rounds now. Its backward products then take `backwardOperands`.
 * @category guards
 */
export const roundsProduct = (a: Tensor.Tensor, b: Tensor.Tensor): boolean => a.dtype === "float32" && b.dtype === "float32" && (a.tape ?? b.tape)?.roundsToBf16 === true

/**
 * The backward products of a bf16 product (see the header): the bf16 GEMM with the gradient as
 * it is (the kernel rounds it while packing), or the gradient rounded to bf16 for the float32
 * kernel.
 * @category mapping
 */
export const backwardOperands = (gradient: Float32Array): { readonly gradient: Float32Array; readonly kernel?: CpuBf16.Bf16MatmulKernel } => {
  const kernel = usable()
  if (kernel !== undefined) return { gradient, kernel }
  const rounded = DType.allocateUninitialized("float32", gradient.length) as Float32Array
  Bf16Round.roundInto(gradient, rounded)
  return { gradient: rounded }
}
