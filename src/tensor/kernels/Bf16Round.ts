/**
 * Bf16Round: rounding float32 storage to bfloat16 values, the one conversion of mixed precision.
 *
 * bfloat16 is the upper half of a float32 (sign, 8-bit exponent, 7-bit mantissa), so a bf16
 * value is a float32 whose low 16 bits are zero. Rounding works on the bit pattern b:
 *   NaN:        the upper half with the quiet bit set (NaN stays NaN);
 *   otherwise:  (b + 0x7FFF + ((b >> 16) & 1)) with the low half cleared: round to nearest,
 *               ties to even, carrying into the exponent (the largest finite values round to
 *               +-Inf), +-Inf and +-0 kept, subnormals rounded like normals (no flush to zero).
 * Storage stays float32: training emulates bf16 storage and reproduces bf16's rounding, and the
 * float32 kernels then compute on bf16 inputs as a bf16 GEMM with fp32 accumulation does.
 *
 * The native kernel (cuda/src/kernels/bf16.cc: AVX512-BF16 when the CPU has it, the portable
 * integer loop otherwise) does the work when the addon has it; this file's TypeScript loop
 * is the reference and the fallback.
 */
import * as CpuBf16 from "../../native/CpuBf16.js"

/**
 * Which code rounds: the native AVX512-BF16 or portable path, or the TypeScript loop.
 * @category models
 */
export type Bf16Path = CpuBf16.Bf16Path | "typescript"

const word = new Uint32Array(1)
const float = new Float32Array(word.buffer)

/**
 * The bf16 rounding of one float32 bit pattern (the reference rule above).
 * @category kernels
 */
export const roundBits = (b: number): number => {
  const bits = b >>> 0
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits | 0x00400000) & 0xffff0000) >>> 0
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000) >>> 0
}

/**
 * The bf16 rounding of one number (first rounded to float32).
 * @category kernels
 */
export const roundValue = (x: number): number => {
  float[0] = x
  word[0] = roundBits(word[0] as number)
  return float[0] as number
}

const roundTypeScript = (src: Float32Array, dst: Float32Array): void => {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length)
  const d = new Uint32Array(dst.buffer, dst.byteOffset, dst.length)
  for (let i = 0; i < s.length; i++) d[i] = roundBits(s[i] as number)
}

const native = CpuBf16.roundBf16Kernel()

/**
 * Writes the bf16 rounding of `src` into `dst` (same length; `dst` may be `src`). `path`
 * "auto" (default) takes the native kernel when the addon has it (AVX512-BF16 when the CPU
 * has it), TypeScript otherwise; a named path forces it. Gives the path that ran.
 * @category kernels
 */
export const roundInto = (src: Float32Array, dst: Float32Array, path: Bf16Path | "auto" = "auto"): Bf16Path => {
  if (src.length !== dst.length) throw new RangeError(`roundInto: src has ${src.length} elements, dst ${dst.length}`)
  if (path === "typescript" || native === undefined) {
    if (path !== "auto" && path !== "typescript") throw new RangeError(`roundInto: the ${path} path needs the native addon with the bf16 kernel (npm run build:native)`)
    roundTypeScript(src, dst)
    return "typescript"
  }
  return native(src, dst, path)
}

/**
 * Whether every element is a bfloat16 value (low 16 bits zero; any NaN counts).
 * @category guards
 */
export const isExact = (data: Float32Array): boolean => {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length)
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] as number
    if ((b & 0xffff) !== 0 && !((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0)) return false
  }
  return true
}

/**
 * Whether the native kernel is available, and whether it takes AVX512-BF16.
 * @category models
 */
export const status = (): { readonly native: boolean; readonly avx512bf16: boolean } => ({ native: native !== undefined, avx512bf16: CpuBf16.bf16Hardware() })
