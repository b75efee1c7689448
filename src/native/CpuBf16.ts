/**
 * CpuBf16: the bfloat16 kernels of the CPU addon: rounding float32 to bf16 values (AVX512-BF16
 * vcvtneps2bf16, or the portable integer rule) and the bf16 GEMM (VDPBF16PS with fp32
 * accumulation), each found at run time: undefined where the build or the CPU lacks it, so the
 * callers fall back (TypeScript rounding; the float32 matmul on the same exact bf16 products).
 */
import { addonIfBuilt } from "./CpuAddon.js"
import { type MatmulArgs, matmulTuple } from "./Cpu.js"

/**
 * The code that rounds float32 to bfloat16 values: AVX512-BF16 (vcvtneps2bf16) or the portable
 * integer rule (cuda/src/kernels/bf16.h).
 * @category models
 */
export type Bf16Path = "avx512bf16" | "portable"

/**
 * The native bf16 rounding: `dst[i]` = `src[i]` rounded to a bfloat16 value (nearest, ties to
 * even; NaN stays NaN; subnormals kept), `dst` may be `src` itself. `path` "auto" takes
 * AVX512-BF16 when the CPU has it. Gives the path that ran. Undefined when the addon is not
 * built or is a build without the kernel (the caller converts in TypeScript then).
 * @category kernels
 */
export const roundBf16Kernel = (): ((src: Float32Array, dst: Float32Array, path: Bf16Path | "auto") => Bf16Path) | undefined => {
  const loaded = addonIfBuilt()
  if (loaded === undefined) return undefined
  const kernel = loaded.roundBf16
  return kernel === undefined ? undefined : (src, dst, path) => kernel.call(loaded, src, dst, path)
}

/**
 * Whether the CPU has AVX512-BF16 (false without a build that has the bf16 kernel).
 * @category kernels
 */
export const bf16Hardware = (): boolean => {
  return addonIfBuilt()?.bf16Hardware?.() ?? false
}

/**
 * The bf16 GEMM (cuda/src/kernels/bf16_matmul.h): `matmul`'s arguments, with a and b holding
 * bfloat16 values in float32 arrays; multiplies on AVX512-BF16 (VDPBF16PS, two multiply-adds
 * per lane and instruction) with fp32 accumulation. Denormal inputs count as zero and denormal
 * results are flushed. `async` runs it on libuv's thread pool (bit-identical to the sync call).
 * @category models
 */
export interface Bf16MatmulKernel {
  readonly sync: (p: MatmulArgs) => void
  readonly async: (p: MatmulArgs) => Promise<void>
}

/**
 * The bf16 GEMM when the addon has it and the CPU has AVX512-BF16; undefined otherwise (the
 * caller then runs `matmul`, whose fp32 sums of the same exact bf16 products are the
 * conversion path).
 * @category kernels
 */
export const bf16MatmulKernel = (): Bf16MatmulKernel | undefined => {
  const loaded = addonIfBuilt()
  if (loaded === undefined) return undefined
  const sync = loaded.matmulBf16
  const async = loaded.matmulBf16Async
  if (sync === undefined || async === undefined || loaded.bf16Hardware?.() !== true) return undefined
  return {
    sync: (p) => sync.call(loaded, ...matmulTuple(p)),
    async: (p) => async.call(loaded, ...matmulTuple(p)),
  }
}
