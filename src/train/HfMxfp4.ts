/**
 * HfMxfp4: the MXFP4 experts of GPT-OSS's releases (config.json's quantization_config
 * {quant_method "mxfp4"}), dequantized on import.
 *
 * An expert projection P, transformers' [E, in, out] (gate_up_proj [E, H, 2F], down_proj
 * [E, F, H]), is stored as P_blocks, bytes [E, out, in / 32, 16], and P_scales, bytes
 * [E, out, in / 32]: each block holds 32 consecutive elements of a row of [E, out, in] as FP4
 * E2M1 codes, two a byte, the low nibble first, and shares one E8M0 scale byte s, 2^(s - 127).
 * Element (e, o, i) is fp4(code) x 2^(s - 127), and P is [E, out, in] with its last two dims
 * exchanged, as transformers' convert_moe_packed_tensors makes it. The E2M1 codes 0 to 7 are
 * 0, 0.5, 1, 1.5, 2, 3, 4, 6 and 8 to 15 their negatives. Computed in float64, exactly (the
 * checkpoint's dtype then rounds, as for any weight). Refused, naming the tensor: blocks without
 * their scales or scales without their blocks, shapes that do not pair, bytes that are not U8.
 */
import type * as ConfigError from "../errors/ConfigError.js"
import type * as Safetensors from "./Safetensors.js"

/**
 * The FP4 E2M1 values by code.
 * @category configuration
 */
export const fp4Values: ReadonlyArray<number> = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]

const blocksSuffix = "_blocks"
const scalesSuffix = "_scales"

/**
 * The tensors with every MXFP4 pair (P_blocks, P_scales) replaced by P, dequantized when its
 * values are read; throws `refuse(reason, fix)` for a pair that is not GPT-OSS's MXFP4.
 * @category constructors
 */
export const dequantized = (tensors: ReadonlyMap<string, Safetensors.Lazy>, refuse: (reason: string, fix: string) => ConfigError.ConfigError): Map<string, Safetensors.Lazy> => {
  const fix = "import GPT-OSS's MXFP4 release as transformers reads it (P_blocks [E, out, in / 32, 16] and P_scales [E, out, in / 32], bytes), or a BF16 copy of it"
  const out = new Map(tensors)
  for (const [name, blocks] of tensors) {
    if (!name.endsWith(blocksSuffix)) continue
    const base = name.slice(0, -blocksSuffix.length)
    const scales = tensors.get(`${base}${scalesSuffix}`)
    if (scales === undefined) throw refuse(`holds ${name} without ${base}${scalesSuffix}`, fix)
    if (blocks.dtype !== "U8" || scales.dtype !== "U8")
      throw refuse(`holds ${name} as ${blocks.dtype} and ${base}${scalesSuffix} as ${scales.dtype}, where MXFP4 stores bytes (U8)`, fix)
    const [e, rows, groups, width] = blocks.shape as [number, number, number, number]
    if (blocks.shape.length !== 4 || width !== 16 || scales.shape.join("x") !== [e, rows, groups].join("x"))
      throw refuse(`holds ${name} [${blocks.shape.join(", ")}] with ${base}${scalesSuffix} [${scales.shape.join(", ")}], where MXFP4 pairs [E, out, G, 16] with [E, out, G]`, fix)
    const cols = groups * 32
    // Experts `first` to `first + count - 1`, from their blocks and scales alone.
    const experts = (first: number, count: number): Float64Array => {
      const codes = blocks.slab(first, count)
      const exponents = scales.slab(first, count)
      const out = new Float64Array(count * rows * cols)
      for (let x = 0; x < count; x++)
        for (let o = 0; o < rows; o++)
          for (let g = 0; g < groups; g++) {
            const at = (x * rows + o) * groups + g
            const scale = 2 ** ((exponents[at] as number) - 127)
            for (let b = 0; b < 16; b++) {
              const byte = codes[at * 16 + b] as number
              const i = g * 32 + 2 * b
              // [E, in, out]: element (x, o, i) of the stored rows goes to (x, i, o).
              out[(x * cols + i) * rows + o] = (fp4Values[byte & 0x0f] as number) * scale
              out[(x * cols + i + 1) * rows + o] = (fp4Values[byte >> 4] as number) * scale
            }
          }
      return out
    }
    out.delete(name)
    out.delete(`${base}${scalesSuffix}`)
    out.set(base, { dtype: "MXFP4", shape: [e, cols, rows], values: () => experts(0, e), slab: experts })
  }
  const orphan = [...out.keys()].find((name) => name.endsWith(scalesSuffix) && out.get(name)?.dtype === "U8")
  if (orphan !== undefined) throw refuse(`holds ${orphan} without its ${orphan.slice(0, -scalesSuffix.length)}${blocksSuffix}`, fix)
  return out
}
