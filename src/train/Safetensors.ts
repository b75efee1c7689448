/**
 * Safetensors: writing the file format Hugging Face weights come in (model.safetensors).
 *
 * A file is:
 *   8 bytes          N, the header's length in bytes, an unsigned little-endian 64-bit integer
 *   N bytes          JSON: {"__metadata__": {string: string}, NAME: {"dtype", "shape",
 *                    "data_offsets": [begin, end]}, ...}, padded with spaces so that the data
 *                    starts at a multiple of 8 bytes
 *   the data         every tensor's bytes back to back, row-major, little-endian, in the order
 *                    of the header; offsets count from the end of the header
 * The dtypes written here: F32, F64 and BF16 (the upper half of each float32's bits, rounded to
 * nearest, ties to even: Bf16Round). Typed arrays are written as they lie in memory, which is
 * little-endian on every platform Node runs pleat on (x86-64, arm64).
 */
import { closeSync, openSync, statSync } from "node:fs"
import * as Bf16Round from "../tensor/kernels/Bf16Round.js"
import * as Durable from "./CheckpointDurable.js"
import * as PositionedRead from "./PositionedRead.js"

/**
 * The element types an export writes.
 * @category models
 */
export type Dtype = "F32" | "F64" | "BF16"

/**
 * One tensor of a file: its name, element type, shape, and its bytes, made when the file is
 * written (one tensor at a time in memory), whole or as pieces in order (a large tensor made a
 * slab at a time).
 * @category models
 */
export interface Entry {
  readonly name: string
  readonly dtype: Dtype
  readonly shape: ReadonlyArray<number>
  readonly bytes: () => Uint8Array | Iterable<Uint8Array>
}

/**
 * Bytes per element of `dtype`.
 * @category getters
 */
const bytesPer = (dtype: Dtype): number => (dtype === "F64" ? 8 : dtype === "F32" ? 4 : 2)

/**
 * The bytes of `values` stored as `dtype` (float64 values are rounded to float32 first for F32
 * and BF16).
 * @category constructors
 */
export const encode = (values: Float32Array | Float64Array, dtype: Dtype): Uint8Array => {
  if (dtype === "F64") {
    const out = values instanceof Float64Array ? values : Float64Array.from(values)
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  }
  const single = values instanceof Float32Array ? values : Float32Array.from(values)
  if (dtype === "F32") return new Uint8Array(single.buffer, single.byteOffset, single.byteLength)
  const rounded = new Float32Array(single.length)
  Bf16Round.roundInto(single, rounded)
  const bits = new Uint32Array(rounded.buffer)
  const out = new Uint16Array(single.length)
  for (let i = 0; i < out.length; i++) out[i] = (bits[i] as number) >>> 16
  return new Uint8Array(out.buffer)
}

/**
 * The size in bytes of `entry`'s data.
 * @category getters
 */
export const byteLength = (entry: Omit<Entry, "bytes">): number => entry.shape.reduce((p, d) => p * d, 1) * bytesPer(entry.dtype)

/**
 * The 8-byte length and the padded JSON header of a file holding `entries` in order.
 * @category constructors
 */
const header = (entries: ReadonlyArray<Omit<Entry, "bytes">>, metadata: Readonly<Record<string, string>>): Uint8Array => {
  const table: Record<string, unknown> = { __metadata__: metadata }
  let at = 0
  for (const e of entries) {
    if (e.name in table) throw new RangeError(`safetensors: two tensors named ${e.name}`)
    table[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + byteLength(e)] }
    at += byteLength(e)
  }
  const json = Buffer.from(JSON.stringify(table), "utf8")
  const padded = Math.ceil(json.byteLength / 8) * 8
  const out = new Uint8Array(8 + padded).fill(0x20, 8)
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true)
  out.set(json, 8)
  return out
}

/**
 * Writes `entries` into a new safetensors file, flushed to the disk, one tensor's bytes made at
 * a time; returns the file's size in bytes.
 * @category constructors
 */
export const write = (file: string, entries: ReadonlyArray<Entry>, metadata: Readonly<Record<string, string>> = { format: "pt" }): number => {
  const head = header(entries, metadata)
  function* parts(): Generator<Uint8Array> {
    yield head
    for (const e of entries) {
      const made = e.bytes()
      const wrong = (n: number) => new RangeError(`safetensors: ${e.name} made ${n} bytes, its ${e.dtype} [${e.shape.join(", ")}] needs ${byteLength(e)}`)
      let n = 0
      for (const piece of made instanceof Uint8Array ? [made] : made) {
        n += piece.byteLength
        if (n > byteLength(e)) throw wrong(n)
        yield piece
      }
      if (n !== byteLength(e)) throw wrong(n)
    }
  }
  Durable.writeFileParts(file, parts())
  return head.byteLength + entries.reduce((n, e) => n + byteLength(e), 0)
}

/**
 * A tensor read from a file: its element type as stored, its shape and its values widened to
 * float64 (F64, F32, F16, BF16 and F8_E4M3 convert exactly; U8, bytes, as 0 to 255: MXFP4's
 * blocks and scales, HfMxfp4).
 * @category models
 */
export interface Read {
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly values: Float64Array
}

/** An IEEE half's value from its 16 bits. */
const halfValue = (h: number): number => {
  const exponent = (h >> 10) & 0x1f
  const mantissa = h & 0x3ff
  const sign = h & 0x8000 ? -1 : 1
  if (exponent === 0) return sign * mantissa * 2 ** -24
  if (exponent === 31) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15)
}

/**
 * An FP8 E4M3 value (OCP's, the "fn" variant PyTorch and the Hub's FP8 checkpoints use) from its
 * 8 bits: sign, 4 exponent bits of bias 7, 3 mantissa bits; subnormals below exponent 1; no
 * infinities, S.1111.111 is NaN (the largest magnitude is 448).
 * @category mapping
 */
export const e4m3Value = (b: number): number => {
  const sign = b & 0x80 ? -1 : 1
  const exponent = (b >> 3) & 0xf
  const mantissa = b & 0x7
  if (exponent === 0xf && mantissa === 0x7) return Number.NaN
  if (exponent === 0) return sign * mantissa * 2 ** -9
  return sign * (1 + mantissa / 8) * 2 ** (exponent - 7)
}

const readers: Readonly<Record<string, { readonly width: number; readonly at: (view: DataView, offset: number) => number }>> = {
  F64: { width: 8, at: (v, o) => v.getFloat64(o, true) },
  F32: { width: 4, at: (v, o) => v.getFloat32(o, true) },
  BF16: { width: 2, at: (v, o) => new Float32Array(new Uint32Array([v.getUint16(o, true) << 16]).buffer)[0] as number },
  F16: { width: 2, at: (v, o) => halfValue(v.getUint16(o, true)) },
  F8_E4M3: { width: 1, at: (v, o) => e4m3Value(v.getUint8(o)) },
  U8: { width: 1, at: (v, o) => v.getUint8(o) },
}

/** A tensor's place in a file, from its header. */
interface Located {
  readonly name: string
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly count: number
  /** Its first byte, counted from the start of the file. */
  readonly at: number
}

/**
 * The header of a file of `fileBytes` bytes whose first 8 + N bytes are `head`: every tensor's
 * place; throws a RangeError saying what is wrong (a header that is not JSON, an element type
 * other than F64, F32, F16, BF16, F8_E4M3 or U8, data outside the file or of the wrong size).
 */
const locate = (head: Uint8Array, fileBytes: number): Array<Located> => {
  if (fileBytes < 8) throw new RangeError(`${fileBytes} bytes, fewer than the 8 of a header's length`)
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true))
  if (8 + n > fileBytes) throw new RangeError(`a header of ${n} bytes in a file of ${fileBytes}`)
  let header: Record<string, { dtype?: unknown; shape?: unknown; data_offsets?: unknown }>
  try {
    header = JSON.parse(Buffer.from(head.subarray(8, 8 + n)).toString("utf8"))
  } catch {
    throw new RangeError("a header that is not JSON")
  }
  const out: Array<Located> = []
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue
    const reader = readers[String(t.dtype)]
    if (reader === undefined) throw new RangeError(`${name} of element type ${String(t.dtype)} (pleat reads F64, F32, F16, BF16, F8_E4M3 and U8)`)
    const shape = t.shape
    const offsets = t.data_offsets
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`${name} with the shape ${JSON.stringify(shape)}`)
    if (!Array.isArray(offsets) || offsets.length !== 2) throw new RangeError(`${name} with the data_offsets ${JSON.stringify(offsets)}`)
    const count = shape.reduce((p: number, d: number) => p * d, 1)
    const [begin, end] = offsets as [number, number]
    if (!(Number.isSafeInteger(begin) && end - begin === count * reader.width && 8 + n + end <= fileBytes && begin >= 0))
      throw new RangeError(`${name} at bytes [${begin}, ${end}) of the data, which does not hold its ${t.dtype} [${shape.join(", ")}] in the file`)
    out.push({ name, dtype: String(t.dtype), shape, count, at: 8 + n + begin })
  }
  return out
}

/** The `count` values of element type `dtype` whose bytes are `bytes` (from the first), widened to float64. */
const widen = (dtype: string, count: number, bytes: Uint8Array): Float64Array => {
  const reader = readers[dtype] as (typeof readers)[string]
  const length = count * reader.width
  // F64, F32, BF16 and U8 through typed views of the bytes (little-endian, as every platform
  // Node runs pleat on), copied to an aligned buffer first where they are not aligned (a copy
  // made by set: a Buffer's slice would share the same unaligned bytes); F16 and F8_E4M3 element
  // by element.
  const aligned = (): Uint8Array => {
    if (bytes.byteOffset % 8 === 0) return bytes
    const copy = new Uint8Array(length)
    copy.set(bytes.subarray(0, length))
    return copy
  }
  if (dtype === "F64") {
    const b = aligned()
    return new Float64Array(b.buffer, b.byteOffset, count).slice()
  }
  if (dtype === "F32") {
    const b = aligned()
    return Float64Array.from(new Float32Array(b.buffer, b.byteOffset, count))
  }
  if (dtype === "BF16") {
    const b = aligned()
    const halves = new Uint16Array(b.buffer, b.byteOffset, count)
    const bits = new Uint32Array(count)
    for (let i = 0; i < count; i++) bits[i] = (halves[i] as number) << 16
    return Float64Array.from(new Float32Array(bits.buffer))
  }
  if (dtype === "U8") return Float64Array.from(bytes.subarray(0, length))
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const values = new Float64Array(count)
  for (let i = 0; i < count; i++) values[i] = reader.at(view, i * reader.width)
  return values
}

/**
 * Every tensor of the safetensors `bytes` by name; throws a RangeError saying what is wrong with
 * a file that is not one (see `open`).
 * @category constructors
 */
export const read = (bytes: Uint8Array): Map<string, Read> =>
  new Map(locate(bytes, bytes.byteLength).map((t) => [t.name, { dtype: t.dtype, shape: t.shape, values: widen(t.dtype, t.count, bytes.subarray(t.at)) }]))

/**
 * A tensor of a file whose values are read when asked for: a model's weights are imported a
 * tensor at a time, never a file (or a model) at a time.
 * @category models
 */
export interface Lazy {
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  /** Its values widened to float64 (as Read's), read from the file at each call. */
  readonly values: () => Float64Array
  /**
   * The values of entries `first` to `first + count - 1` of its first dimension (`count` times
   * the elements of one entry), widened as `values`: an expert's slab of a tensor [E, ...], read
   * without the rest.
   */
  readonly slab: (first: number, count: number) => Float64Array
}

/** Elements of one entry of a tensor's first dimension (1 for a scalar or a vector's). */
const entryElements = (shape: ReadonlyArray<number>): number => shape.slice(1).reduce((p, d) => p * d, 1)

/**
 * A Lazy whose slabs are cut from `values` (a tensor held in memory, or one whose parts cannot
 * be read alone).
 * @category constructors
 */
export const slabsOf = (dtype: string, shape: ReadonlyArray<number>, values: () => Float64Array): Lazy => ({
  dtype,
  shape,
  values,
  slab: (first, count) => values().slice(first * entryElements(shape), (first + count) * entryElements(shape)),
})

/** About how many elements a slab holds (32 MiB widened to float64). */
const slabElements = 1 << 22

/**
 * The slabs of a tensor of `entries` entries of `entry` elements each: [first, count] of whole
 * entries, about `elements` elements each (one entry at least), in order. The one rule by which
 * imports read and exports write a tensor a part at a time.
 * @category constructors
 */
export function* slabs(entries: number, entry: number, elements = slabElements): Generator<readonly [number, number]> {
  const step = Math.max(1, Math.floor(elements / Math.max(entry, 1)))
  for (let first = 0; first < entries; first += step) yield [first, Math.min(step, entries - first)]
}

/**
 * `t`'s values read a slab of whole entries of its first dimension at a time (about `elements`,
 * 2^22 by default, one entry at least): `each(values, from, first, count)`, `from` the slab's
 * first element and `first`, `count` its entries. A tensor of hundreds of experts is read without
 * ever holding it whole.
 * @category models
 */
export const eachSlab = (t: Lazy, each: (values: Float64Array, from: number, first: number, count: number) => void, elements = slabElements): void => {
  const entry = entryElements(t.shape)
  for (const [first, count] of slabs(t.shape.length === 0 ? 1 : (t.shape[0] as number), entry, elements)) each(t.slab(first, count), first * entry, first, count)
}

/**
 * Tensors held in memory as lazy ones (each call gives the same array).
 * @category constructors
 */
export const lazily = (tensors: ReadonlyMap<string, Read>): Map<string, Lazy> => new Map([...tensors].map(([name, t]) => [name, slabsOf(t.dtype, t.shape, () => t.values)]))

/** `length` bytes of the open file `fd` from byte `at`. */
const bytesAt = (fd: number, at: number, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  const got = PositionedRead.readFully(fd, out, 0, length, at)
  if (got < length) throw new RangeError(`the file ends at byte ${at + got}, within a tensor`)
  return out
}

/**
 * Every tensor of the safetensors file `file` by name, its header read now and its values when
 * asked for; throws a RangeError saying what is wrong with a file that is not one (a header that
 * is not JSON, an element type other than F64, F32, F16, BF16, F8_E4M3 or U8, data outside the
 * file or of the wrong size).
 * @category constructors
 */
export const open = (file: string): Map<string, Lazy> => {
  const fileBytes = statSync(file).size
  const fd = openSync(file, "r")
  let located: Array<Located>
  try {
    const length = fileBytes < 8 ? new Uint8Array(0) : bytesAt(fd, 0, 8)
    const n = length.byteLength < 8 ? 0 : Number(new DataView(length.buffer).getBigUint64(0, true))
    located = locate(fileBytes < 8 || 8 + n > fileBytes ? length : bytesAt(fd, 0, 8 + n), fileBytes)
  } finally {
    closeSync(fd)
  }
  // `count` elements of t from its element `first`.
  const elementsOf = (t: Located, first: number, count: number): Float64Array => {
    const width = (readers[t.dtype] as (typeof readers)[string]).width
    const at = openSync(file, "r")
    try {
      return widen(t.dtype, count, bytesAt(at, t.at + first * width, count * width))
    } finally {
      closeSync(at)
    }
  }
  return new Map(
    located.map((t) => {
      const entry = entryElements(t.shape)
      const slab = (first: number, count: number): Float64Array => {
        const entries = t.shape[0] ?? 1
        if (!(Number.isSafeInteger(first) && Number.isSafeInteger(count) && first >= 0 && count >= 0 && first + count <= entries))
          throw new RangeError(`entries [${first}, ${first + count}) of ${t.name}, whose first dimension has ${entries}`)
        return elementsOf(t, first * entry, count * entry)
      }
      return [t.name, { dtype: t.dtype, shape: t.shape, values: () => elementsOf(t, 0, t.count), slab }]
    }),
  )
}
