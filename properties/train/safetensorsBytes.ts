// Safetensors files of raw bytes written here, not by pleat: the quantized checkpoints of the
// import tests (FP8 codes, MXFP4 blocks and scales) in the element types pleat never writes.
import { writeFileSync } from "node:fs"

/** Writes `entries` (bytes as given) as a safetensors file. */
export const writeSafetensors = (
  file: string,
  entries: ReadonlyArray<{ readonly name: string; readonly dtype: string; readonly shape: ReadonlyArray<number>; readonly bytes: Uint8Array }>,
) => {
  let offset = 0
  const header: Record<string, unknown> = {}
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] }
    offset += e.bytes.byteLength
  }
  const json = Buffer.from(JSON.stringify(header))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.byteLength))
  writeFileSync(file, Buffer.concat([length, json, ...entries.map((e) => Buffer.from(e.bytes))]))
}
