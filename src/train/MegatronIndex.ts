/**
 * MegatronIndex: how a Megatron-LM indexed dataset (PREFIX.bin with its PREFIX.idx, written by
 * Megatron-LM's preprocess_data.py) stores its token ids, read from the index's header, so that
 * `--data-path PREFIX` trains on PREFIX.bin (TokenFile) without the user naming its dtype.
 *
 * The header: the 9 bytes "MMIDIDX\0\0", the version (uint64 little-endian, 1), then one byte
 * naming the dtype of the ids in .bin (Megatron-LM's DType codes: 8 uint16, which it writes for
 * vocabularies under 65,500; 4 int32 for larger ones). int32 ids are read as uint32: the same
 * bytes for every id >= 0, and a negative one reads as an id far above any vocabulary, which
 * TokenFile.inspect refuses. The document boundaries in the rest of the index (documentTable)
 * serve --split alone (MegatronSplit): within a split pleat reads windows of the packed ids, as
 * TokenFile says.
 */
import { closeSync, existsSync, openSync, readSync } from "node:fs"
import * as ConfigError from "../errors/ConfigError.js"
import type * as TokenFile from "./TokenFile.js"
import * as WindowedFile from "./WindowedFile.js"

const magic = "MMIDIDX\0\0"

/** Megatron-LM's dtype codes that pleat reads, and as what. */
const codes: Readonly<Record<number, TokenFile.TokenDtype>> = { 8: "uint16", 4: "uint32" }

const names: Readonly<Record<number, string>> = { 1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float64", 7: "float32", 8: "uint16" }

/**
 * The dtype of PREFIX.bin's ids from PREFIX.idx; a ConfigError naming `field` when the index is
 * missing, is not one, or stores ids pleat does not read.
 * @category constructors
 */
export const dtypeOf = (prefix: string, field: string): TokenFile.TokenDtype | ConfigError.ConfigError => {
  const index = `${prefix}.idx`
  const fix = "give the prefix of a dataset Megatron-LM's preprocess_data.py wrote (PREFIX.bin and PREFIX.idx), or pleat's --data FILE --data-dtype"
  if (!existsSync(index) || !existsSync(`${prefix}.bin`)) return ConfigError.make(field, prefix, `has no ${existsSync(index) ? `${prefix}.bin` : index}`, fix)
  const header = Buffer.alloc(18)
  const fd = openSync(index, "r")
  let got = 0
  try {
    got = readSync(fd, header, 0, header.length, 0)
  } finally {
    closeSync(fd)
  }
  if (got < header.length || header.toString("latin1", 0, 9) !== magic || header.readBigUInt64LE(9) !== 1n)
    return ConfigError.make(field, prefix, `has an index ${index} that is not a Megatron-LM indexed dataset's (version 1)`, fix)
  const code = header.readUInt8(17)
  const dtype = codes[code]
  if (dtype === undefined)
    return ConfigError.make(
      field,
      prefix,
      `stores its ids as ${names[code] ?? `dtype code ${code}`}, which pleat does not read`,
      "write the dataset with uint16 ids (vocabularies under 65,500) or int32 ones",
    )
  return dtype
}

/**
 * Where the documents of PREFIX start in PREFIX.bin, in ids: `startOf(d)` for d in 0..documents
 * (`startOf(documents)` is where the last one ends), read from the index when asked (nothing per
 * document is held: a dataset of a billion documents has 8 GB of document entries); `close`
 * closes the index.
 * @category models
 */
export interface DocumentTable {
  readonly documents: number
  readonly startOf: (d: number) => number
  readonly close: () => void
}

/**
 * The document table of PREFIX, once every entry has been checked, from the index past its
 * header: the sequence count S and the document count D (uint64 each), S sequence lengths
 * (int32, in ids), S sequence pointers (int64, in bytes of .bin), then D document indices
 * (int64: the sequence each document starts at, the last one S). A ConfigError naming `field`
 * for an index shorter than what its counts say, or whose pointers do not fit its ids or run
 * backwards.
 * @category constructors
 */
export const documentTable = (prefix: string, dtype: TokenFile.TokenDtype, field: string, windowBytes?: number): DocumentTable | ConfigError.ConfigError => {
  // Read through windows, one walking the document table and one the sequence tables: an index
  // of ~100M documents is past 2 GiB, where readFileSync stops.
  const index = WindowedFile.open(`${prefix}.idx`, windowBytes)
  const tables = WindowedFile.open(`${prefix}.idx`, windowBytes)
  const close = () => {
    index.close()
    tables.close()
  }
  try {
    const table = tableIn(index, tables, prefix, dtype, field, close)
    if (ConfigError.isConfigError(table)) close()
    return table
  } catch (error) {
    close()
    throw error
  }
}

const tableIn = (
  index: WindowedFile.WindowedFile,
  tables: WindowedFile.WindowedFile,
  prefix: string,
  dtype: TokenFile.TokenDtype,
  field: string,
  close: () => void,
): DocumentTable | ConfigError.ConfigError => {
  const width = dtype === "uint16" ? 2 : 4
  const bad = (what: string) =>
    ConfigError.make(field, prefix, `has an index ${prefix}.idx that ${what}`, "give the prefix of a dataset Megatron-LM's preprocess_data.py wrote, whole")
  if (index.size < 34) return bad("ends before its sequence and document counts")
  const sequences = index.uint64(18)
  const documents = index.uint64(26)
  const lengthsAt = 34
  const pointersAt = lengthsAt + 4 * sequences
  const documentsAt = pointersAt + 8 * sequences
  if (!Number.isSafeInteger(documentsAt + 8 * documents) || index.size < documentsAt + 8 * documents || documents < 1)
    return bad(`is shorter than its ${sequences} sequences and ${documents} document entries need`)
  const sequenceStart = (s: number): number => {
    if (s === sequences) return sequences === 0 ? 0 : sequenceStart(s - 1) + tables.int32(lengthsAt + 4 * (s - 1))
    return tables.int64(pointersAt + 8 * s) / width
  }
  const startOf = (d: number): number => sequenceStart(index.int64(documentsAt + 8 * d))
  let previous = 0
  for (let d = 0; d < documents; d++) {
    const s = index.int64(documentsAt + 8 * d)
    if (!(Number.isSafeInteger(s) && s >= 0 && s <= sequences)) return bad(`names sequence ${s} of ${sequences} as document ${d}'s first`)
    const start = sequenceStart(s)
    if (!Number.isInteger(start) || (d > 0 && start < previous)) return bad(`puts document ${d} at byte ${start * width}, out of order`)
    previous = start
  }
  return { documents: documents - 1, startOf, close }
}
