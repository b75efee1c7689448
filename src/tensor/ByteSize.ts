/**
 * ByteSize: a size as people write it (`5GB`, `500MB`, `2GiB`, `1048576`): a count with an
 * optional unit, KB, MB, GB, TB decimal, KiB, MiB, GiB, TiB binary, B bytes; case-insensitive.
 */
import * as ConfigError from "../errors/ConfigError.js"

const units: Readonly<Record<string, number>> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 }

/**
 * The bytes of `text`, a size of 1 byte or more; a ConfigError naming `field` otherwise.
 * @category constructors
 */
export const parse = (field: string, text: string): number => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const unit = units[(m?.[2] ?? "").toLowerCase() || "b"]
  const bytes = m === null || unit === undefined ? Number.NaN : Math.floor(Number(m[1]) * unit)
  if (!(bytes >= 1) || !Number.isSafeInteger(bytes)) throw ConfigError.make(field, text, "is not a size of 1 byte or more", "pass a size such as 5GB, 500MB, 2GiB or a byte count")
  return bytes
}
