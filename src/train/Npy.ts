/**
 * Npy: integer arrays in NumPy's .npy format (format versions 1.0 to 3.0), so that Python writes
 * and reads them with `np.save` / `np.load` and pleat reads what they write.
 *
 * Layout (numpy.lib.format): the magic "\x93NUMPY", the major and minor version bytes, the
 * header's length (2 bytes little-endian in 1.0, 4 bytes in 2.0 and 3.0), the header: a Python
 * dict literal `{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces
 * and ended by a newline so that the data starts at a multiple of 64 bytes, then the data in C
 * order.
 *
 * pleat writes version 1.0, little-endian int32. It reads little-endian (or byte-order-free)
 * integers of 1, 2, 4 or 8 bytes, signed or not (`np.save` of Python ints gives '<i8'); values
 * of 8 bytes must be safe integers. Anything else (floats, big-endian, Fortran order, a cut
 * file) is refused with a ConfigError naming `field` and the fix.
 */
import * as ConfigError from "../errors/ConfigError.js"

/**
 * A decoded array: its shape and its values in C order.
 * @category models
 */
export interface IntArray {
  readonly shape: ReadonlyArray<number>
  readonly data: Int32Array | Float64Array
}

const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59] // "\x93NUMPY"

/** What a numpy type string of an integer reads as: its bytes and whether it is signed. */
const integerTypes: Readonly<Record<string, { readonly bytes: number; readonly signed: boolean }>> = {
  "|i1": { bytes: 1, signed: true },
  "|u1": { bytes: 1, signed: false },
  "<i1": { bytes: 1, signed: true },
  "<u1": { bytes: 1, signed: false },
  "<i2": { bytes: 2, signed: true },
  "<u2": { bytes: 2, signed: false },
  "<i4": { bytes: 4, signed: true },
  "<u4": { bytes: 4, signed: false },
  "<i8": { bytes: 8, signed: true },
  "<u8": { bytes: 8, signed: false },
}

/**
 * The .npy file of int32 `data` with `shape` (C order), version 1.0.
 * @category constructors
 */
export const encodeInt32 = (data: Int32Array, shape: ReadonlyArray<number>): Uint8Array => {
  const count = shape.reduce((a, b) => a * b, 1)
  if (count !== data.length) throw new Error(`Npy.encodeInt32: shape (${shape.join(", ")}) holds ${count} values, the data ${data.length}`)
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`
  const dict = `{'descr': '<i4', 'fortran_order': False, 'shape': ${dims}, }`
  // 10 bytes before the header; the header ends with a newline; the data starts at a multiple of 64.
  const unpadded = 10 + dict.length + 1
  const header = `${dict}${" ".repeat((64 - (unpadded % 64)) % 64)}\n`
  const out = new Uint8Array(10 + header.length + data.length * 4)
  out.set(magic, 0)
  out[6] = 1
  out[7] = 0
  new DataView(out.buffer).setUint16(8, header.length, true)
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i)
  const view = new DataView(out.buffer, 10 + header.length)
  for (let i = 0; i < data.length; i++) view.setInt32(i * 4, data[i] as number, true)
  return out
}

/** The value of `key` in the header's dict literal (its text), or undefined. */
const entry = (header: string, key: string): string | undefined => {
  const m = new RegExp(`['"]${key}['"]\\s*:\\s*('[^']*'|"[^"]*"|True|False|\\([^)]*\\))`).exec(header)
  return m?.[1]
}

/** The dims of a shape tuple's text "(2, 3)", "(3,)", "()"; undefined when it is not one. */
const dimsOf = (tuple: string): Array<number> | undefined => {
  const inner = tuple.slice(1, -1).trim()
  if (inner === "") return []
  const parts = inner.split(",").map((p) => p.trim())
  if (parts[parts.length - 1] === "") parts.pop()
  const dims = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : Number.NaN))
  return dims.every((d) => Number.isSafeInteger(d)) ? dims : undefined
}

/**
 * Decodes a .npy file of integers; `field` names it in errors (the flag and the file).
 * @category mapping
 */
export const decodeIntegers = (bytes: Uint8Array, field: string): IntArray => {
  const refuse = (reason: string, fix: string) => ConfigError.make(field, `${bytes.length} bytes`, reason, fix)
  const resave = "write it with numpy's np.save of an integer array (C order)"
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw refuse("is not a .npy file (no \\x93NUMPY magic)", resave)
  const major = bytes[6] as number
  if (major < 1 || major > 3) throw refuse(`is .npy format version ${major}.${bytes[7]}, which pleat does not read`, resave)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const lengthBytes = major === 1 ? 2 : 4
  if (bytes.length < 8 + lengthBytes) throw refuse("ends inside its header", resave)
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true)
  const start = 8 + lengthBytes + headerLength
  if (bytes.length < start) throw refuse("ends inside its header", resave)
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(8 + lengthBytes, start))
  const descr = entry(header, "descr")?.slice(1, -1)
  const type = descr === undefined ? undefined : integerTypes[descr]
  if (type === undefined) throw refuse(`holds ${descr ?? "no descr"}, not little-endian integers`, "save integer expert indices (np.int32 or np.int64)")
  if (entry(header, "fortran_order") !== "False") throw refuse("is in Fortran order", "save np.ascontiguousarray(a) (C order)")
  const tuple = entry(header, "shape")
  const shape = tuple?.startsWith("(") === true ? dimsOf(tuple) : undefined
  if (shape === undefined) throw refuse(`has no readable shape (${tuple ?? "none"})`, resave)
  const count = shape.reduce((a, b) => a * b, 1)
  if (bytes.length - start !== count * type.bytes) {
    throw refuse(`holds ${bytes.length - start} data bytes where its shape (${shape.join(", ")}) needs ${count * type.bytes}`, "write the file whole again (it is cut or padded)")
  }
  const data = type.bytes === 8 || (type.bytes === 4 && !type.signed) ? new Float64Array(count) : new Int32Array(count)
  for (let i = 0; i < count; i++) {
    const at = start + i * type.bytes
    data[i] = readInteger(view, at, type.bytes, type.signed, (big) => refuse(`holds value ${big} at index ${i}, beyond 2^53`, "save values that fit an int32"))
  }
  return { shape, data }
}

/** The integer of `bytes` bytes at `at` (8-byte ones must be safe integers: `tooLarge` otherwise). */
const readInteger = (view: DataView, at: number, bytes: number, signed: boolean, tooLarge: (big: bigint) => ConfigError.ConfigError): number => {
  if (bytes === 1) return signed ? view.getInt8(at) : view.getUint8(at)
  if (bytes === 2) return signed ? view.getInt16(at, true) : view.getUint16(at, true)
  if (bytes === 4) return signed ? view.getInt32(at, true) : view.getUint32(at, true)
  const big = signed ? view.getBigInt64(at, true) : view.getBigUint64(at, true)
  const value = Number(big)
  if (!Number.isSafeInteger(value)) throw tooLarge(big)
  return value
}
