/**
 * HfFp8: the block-wise FP8 weights of the Hub's FP8 checkpoints (DeepSeek-V3's and
 * Qwen3's -FP8 models: config.json's quantization_config {quant_method "fp8", fmt "e4m3",
 * weight_block_size [bo, bi]}), dequantized on import.
 *
 * A quantized weight W [out, in] is stored as F8_E4M3 beside `W_scale_inv` [ceil(out / bo),
 * ceil(in / bi)] (float): element (i, j) is W[i, j] * scale_inv[floor(i / bo), floor(j / bi)],
 * as transformers' and DeepSeek's weight_dequant compute it (the last blocks of a dimension
 * that bo or bi does not divide are partial). Every other tensor is as stored. Refused, naming
 * the tensor or the key: another quant_method or fmt, FP8 without its scales or scales without
 * their weight, scales of another shape, FP8 where the config declares no quantization.
 */
import type * as ConfigError from "../errors/ConfigError.js"
import type * as Safetensors from "./Safetensors.js"

/**
 * A config's quantization_config, as far as import reads it.
 * @category models
 */
export interface Quantization {
  readonly quant_method?: string | null | undefined
  readonly fmt?: string | null | undefined
  readonly weight_block_size?: ReadonlyArray<number> | null | undefined
}

const suffix = "_scale_inv"

/**
 * The tensors with every FP8 weight dequantized (when its values are read) and its scales gone;
 * throws `refuse(reason, fix)` for what is not the block-wise FP8 above.
 * @category constructors
 */
export const dequantized = (
  tensors: ReadonlyMap<string, Safetensors.Lazy>,
  quantization: Quantization | null | undefined,
  refuse: (reason: string, fix: string) => ConfigError.ConfigError,
): Map<string, Safetensors.Lazy> => {
  const fp8 = [...tensors].filter(([, t]) => t.dtype === "F8_E4M3").map(([name]) => name)
  if (quantization === undefined || quantization === null) {
    if (fp8.length > 0)
      throw refuse(
        `holds FP8 tensors (${fp8[0]}) but config.json declares no quantization_config`,
        "pass the model's own config.json, whose quantization_config gives the FP8 blocks",
      )
    return new Map(tensors)
  }
  const fix =
    "import a model quantized as the Hub's FP8 checkpoints are (quant_method fp8, fmt e4m3, weight_block_size [128, 128]) or as GPT-OSS's experts are (quant_method mxfp4), or its BF16 release"
  if (quantization.quant_method !== "fp8") throw refuse(`is quantized with quant_method ${quantization.quant_method}`, fix)
  if ((quantization.fmt ?? "e4m3") !== "e4m3") throw refuse(`holds FP8 of fmt ${quantization.fmt}`, fix)
  const block = quantization.weight_block_size
  if (block === undefined || block === null || block.length !== 2 || !block.every((b) => Number.isSafeInteger(b) && b >= 1))
    throw refuse(`gives weight_block_size ${JSON.stringify(block)}`, fix)
  const [bo, bi] = block as [number, number]
  const out = new Map(tensors)
  for (const name of fp8) {
    const scales = tensors.get(`${name}${suffix}`)
    if (scales === undefined) throw refuse(`holds ${name} in FP8 without ${name}${suffix}`, fix)
    const w = tensors.get(name) as Safetensors.Lazy
    const [rows, cols] = w.shape as [number, number]
    const [sr, sc] = [Math.ceil(rows / bo), Math.ceil(cols / bi)]
    if (w.shape.length !== 2 || scales.shape.join("x") !== `${sr}x${sc}`)
      throw refuse(`holds ${name}${suffix} of shape [${scales.shape.join(", ")}] for ${name} [${w.shape.join(", ")}], where blocks of ${bo} x ${bi} make it [${sr}, ${sc}]`, fix)
    // Rows `first` to `first + count - 1`, from their stored values and their blocks' scales alone.
    const slab = (first: number, count: number): Float64Array => {
      const out = new Float64Array(count * cols)
      if (count === 0) return out
      const stored = w.slab(first, count)
      const top = Math.floor(first / bo)
      const scale = scales.slab(top, Math.floor((first + count - 1) / bo) - top + 1)
      for (let i = 0; i < count; i++) {
        const row = (Math.floor((first + i) / bo) - top) * sc
        for (let j = 0; j < cols; j++) out[i * cols + j] = (stored[i * cols + j] as number) * (scale[row + Math.floor(j / bi)] as number)
      }
      return out
    }
    out.set(name, { dtype: w.dtype, shape: w.shape, values: () => slab(0, rows), slab })
    out.delete(`${name}${suffix}`)
  }
  const orphan = [...out.keys()].find((name) => name.endsWith(suffix))
  if (orphan !== undefined) throw refuse(`holds ${orphan} for a weight that is not FP8`, fix)
  return out
}
