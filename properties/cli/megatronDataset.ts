// A Megatron-LM indexed dataset written as preprocess_data.py writes one, for the tests of
// --data-path (MegatronSplit.test.ts, MegatronIndex.prop.ts).
import { writeFileSync } from "node:fs"
import path from "node:path"

/** A Megatron-LM indexed dataset of `documents` (each one sequence of ids), uint16, written here as preprocess_data.py writes one. */
export const dataset = (dir: string, name: string, documents: ReadonlyArray<ReadonlyArray<number>>): string => {
  const prefix = path.join(dir, name)
  const s = documents.length
  const index = Buffer.alloc(34 + 12 * s + 8 * (s + 1))
  index.write("MMIDIDX\0\0", 0, "latin1")
  index.writeBigUInt64LE(1n, 9)
  index.writeUInt8(8, 17)
  index.writeBigUInt64LE(BigInt(s), 18)
  index.writeBigUInt64LE(BigInt(s + 1), 26)
  let bytes = 0
  documents.forEach((d, k) => {
    index.writeInt32LE(d.length, 34 + 4 * k)
    index.writeBigInt64LE(BigInt(bytes), 34 + 4 * s + 8 * k)
    bytes += 2 * d.length
  })
  for (let k = 0; k <= s; k++) index.writeBigInt64LE(BigInt(k), 34 + 12 * s + 8 * k)
  writeFileSync(`${prefix}.idx`, index)
  writeFileSync(`${prefix}.bin`, Buffer.from(new Uint16Array(documents.flat()).buffer))
  return prefix
}
