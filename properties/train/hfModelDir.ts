// Reading a Hugging Face model directory as the independent transformers reading (hfReference.ts)
// and the import tests see it: config.json and every tensor of its safetensors files, in float64,
// with the layout the format prescribes checked. It shares no code with src/.
import { existsSync, readFileSync } from "node:fs"
import path from "node:path"

export interface Stored {
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly values: Float64Array
}

const widths: Readonly<Record<string, number>> = { F64: 8, F32: 4, BF16: 2 }

/** Every tensor of one safetensors file, checking the layout the format prescribes. */
export const readSafetensors = (file: string): Map<string, Stored> => {
  const bytes = readFileSync(file)
  const n = Number(bytes.readBigUInt64LE(0))
  if ((8 + n) % 8 !== 0) throw new Error(`${file}: the data does not start at a multiple of 8 (header ${n} bytes)`)
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: Array<number>; data_offsets: [number, number] }>
  const data = bytes.subarray(8 + n)
  const out = new Map<string, Stored>()
  let expectedBegin = 0
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue
    const width = widths[t.dtype]
    if (width === undefined) throw new Error(`${file}: ${name} has dtype ${t.dtype}`)
    const count = t.shape.reduce((p, d) => p * d, 1)
    const [begin, end] = t.data_offsets
    if (begin !== expectedBegin || end - begin !== count * width) throw new Error(`${file}: ${name} at [${begin}, ${end}) is not packed after the previous tensor`)
    expectedBegin = end
    const values = new Float64Array(count)
    for (let i = 0; i < count; i++) {
      const at = begin + i * width
      values[i] = t.dtype === "F64" ? data.readDoubleLE(at) : t.dtype === "F32" ? data.readFloatLE(at) : new Float32Array(new Uint32Array([data.readUInt16LE(at) << 16]).buffer)[0]!
    }
    out.set(name, { dtype: t.dtype, shape: t.shape, values })
  }
  if (expectedBegin !== data.byteLength) throw new Error(`${file}: ${data.byteLength} data bytes, the header lays out ${expectedBegin}`)
  return out
}

export interface ModelDir {
  readonly config: Record<string, unknown>
  readonly tensors: Map<string, Stored>
  /** The file of each tensor. */
  readonly files: Map<string, string>
}

/** config.json and every tensor, from model.safetensors or the files its index names. */
export const readModelDir = (dir: string): ModelDir => {
  const config = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>
  const index = path.join(dir, "model.safetensors.index.json")
  const names = existsSync(index)
    ? [...new Set(Object.values((JSON.parse(readFileSync(index, "utf8")) as { weight_map: Record<string, string> }).weight_map))]
    : ["model.safetensors"]
  const tensors = new Map<string, Stored>()
  const files = new Map<string, string>()
  for (const name of names) {
    for (const [k, v] of readSafetensors(path.join(dir, name))) {
      if (tensors.has(k)) throw new Error(`${k} is in two files`)
      tensors.set(k, v)
      files.set(k, name)
    }
  }
  return { config, tensors, files }
}
