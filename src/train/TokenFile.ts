/**
 * TokenFile: training data from a file of token ids, the format nanoGPT's `train.bin` and
 * Megatron-LM's indexed `.bin` use: the ids of a tokenized corpus one after another,
 * little-endian, 2 bytes each (uint16, vocabularies up to 65,536) or 4 (uint32), no header.
 * Document boundaries are whatever the tokenizer wrote (an end-of-text id); of Megatron's `.idx`
 * only the header is read, for the dtype of `--data-path PREFIX` (MegatronIndex).
 *
 * A run may read a range of the file's ids only ([first, first + tokens): the documents of one
 * split of a Megatron-LM dataset, `--split`); ids outside it are never read. The range holds
 * W = floor((n - 1) / seq) windows of seq + 1 tokens (inputs and next-token targets), window w
 * starting at token first + w * seq; WindowOrder decides which window each sequence of
 * the stream reads. `inspect` checks a file once before any work (size, length, every id below
 * the vocabulary; of a range over 1 GiB, samples of its ids), so a bad file is a one-line error
 * and never a crash mid-run; `read` then reads one window with one positioned read (every rank
 * reads only its own micro-batches) and checks its ids (a ConfigError, exit 2, for one at or over
 * the vocabulary in a part the samples missed).
 */
import { closeSync, fstatSync, openSync, statSync } from "node:fs"
import * as PositionedRead from "./PositionedRead.js"
import * as ConfigError from "../errors/ConfigError.js"

/**
 * How the file stores each id.
 * @category models
 */
export type TokenDtype = "uint16" | "uint32"

/**
 * The dtypes, for flags.
 * @category configuration
 */
export const dtypes = ["uint16", "uint32"] as const satisfies ReadonlyArray<TokenDtype>

/**
 * A token file of a run: where it is, how it stores ids, and how many it held when checked.
 * @category models
 */
export interface TokenFile {
  readonly path: string
  readonly dtype: TokenDtype
  /** The ids read: this many from `first`. */
  readonly tokens: number
  /** The first id read (absent: 0, the file's first). */
  readonly first?: number
  /** The flag that gave the file, for `read`'s errors (absent: `data`). */
  readonly field?: string
  /** Present when `inspect` read samples of the ids only (a file over `wholeCheckBytes`). */
  readonly sampled?: true
}

/**
 * A range of a file's ids, [first, end).
 * @category models
 */
export interface TokenRange {
  readonly first: number
  readonly end: number
}

/**
 * Bytes of one id.
 * @category mapping
 */
export const bytesOf = (dtype: TokenDtype): number => (dtype === "uint16" ? 2 : 4)

/**
 * Windows of seq + 1 tokens the file holds (consecutive windows share one token).
 * @category mapping
 */
export const windows = (file: Pick<TokenFile, "tokens">, seq: number): number => Math.max(0, Math.floor((file.tokens - 1) / seq))

/** Bytes read at a time while checking a file. */
const chunkBytes = 1 << 24

/**
 * The ids `inspect` reads whole before a run (~1 s); of a larger range it reads `samples` pieces
 * that add up to this much, spread from its start to its end, and `read` checks every window it
 * reads: a corpus of hundreds of GB would take minutes to scan at every start and resume.
 */
const wholeCheckBytes = 1 << 30

/**
 * The pieces a sampled check reads.
 * @category configuration
 */
export const samples = 16

/** The byte ranges [from, to) of [start, stop) that a check with `whole` bytes reads, in order. */
export const checkedRanges = (start: number, stop: number, width: number, whole: number): Array<readonly [number, number]> => {
  if (stop - start <= whole) return [[start, stop]]
  const piece = Math.max(width, Math.floor(whole / samples / width) * width)
  const ranges: Array<readonly [number, number]> = []
  for (let k = 0; k < samples; k++) {
    const from = start + Math.floor((k * (stop - start - piece)) / (samples - 1) / width) * width
    const last = ranges.at(-1)
    if (last !== undefined && from < last[1]) ranges[ranges.length - 1] = [last[0], from + piece]
    else ranges.push([from, from + piece])
  }
  return ranges
}

/** The ids of `bytes` read from `fd` at `offset` into `buffer`, as a typed view. */
const idsOf = (buffer: Buffer, bytes: number, dtype: TokenDtype): Uint16Array | Uint32Array =>
  dtype === "uint16" ? new Uint16Array(buffer.buffer, buffer.byteOffset, bytes / 2) : new Uint32Array(buffer.buffer, buffer.byteOffset, bytes / 4)

/** Reads exactly `bytes` at `offset`, or fewer where the file ended. */
const readAt = (fd: number, buffer: Buffer, bytes: number, offset: number): number => PositionedRead.readFully(fd, buffer, 0, bytes, offset)

const platformIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * Checks `path` as a token file for a model of `vocab` ids and sequences of `seq` tokens: it is
 * readable, a whole number of ids, at least one window long, and every id is below `vocab`.
 * Returns the file, or the ConfigError naming `field` (the flag that gave the file), the value and
 * the fix.
 * Reads the ids of the range once (~1 GB/s) up to `whole` bytes (`wholeCheckBytes`), else
 * samples of them (`checkedRanges`; the file is then `sampled` and `read` checks the rest).
 * @category constructors
 */
export const inspect = (
  path: string,
  dtype: TokenDtype,
  seq: number,
  vocab: number,
  field = "data",
  range?: TokenRange,
  whole = wholeCheckBytes,
): TokenFile | ConfigError.ConfigError => {
  if (!platformIsLittleEndian) return ConfigError.make(field, path, "cannot be read on a big-endian machine (token files are little-endian)", "train on a little-endian machine")
  let fd: number
  try {
    // Opening a FIFO would wait for a writer: a path that is no regular file is refused unopened.
    if (!statSync(path).isFile()) return ConfigError.make(field, path, "is not a file", "pass the path of a file of token ids")
    fd = openSync(path, "r")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable"
    return ConfigError.make(field, path, `cannot be read (${code})`, "pass the path of a readable file of token ids")
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) return ConfigError.make(field, path, "is not a file", "pass the path of a file of token ids")
    const width = bytesOf(dtype)
    if (stat.size % width !== 0) {
      const other = dtype === "uint32" ? ", or --data-dtype uint16 if it holds 2-byte ids" : ""
      return ConfigError.make(field, path, `is ${stat.size} bytes, not a whole number of ${width}-byte ${dtype} ids`, `pass a file written as ${dtype}${other}`)
    }
    const all = stat.size / width
    if (range !== undefined && !(Number.isSafeInteger(range.first) && Number.isSafeInteger(range.end) && range.first >= 0 && range.first < range.end && range.end <= all))
      return ConfigError.make(`${field}-range`, `${range.first}:${range.end}`, `is not a range of the ${all} ids of ${path}`, `give START:END with 0 <= START < END <= ${all}`)
    const first = range?.first ?? 0
    const tokens = (range?.end ?? all) - first
    if (tokens < seq + 1) {
      const fix = tokens >= 2 ? `use --seq ${tokens - 1} or less, or a longer file` : "pass a file of at least two tokens"
      const what = range === undefined ? "holds" : `holds in --${field}-range ${first}:${first + tokens}`
      return ConfigError.make(field, path, `${what} ${tokens} tokens, fewer than one sequence of --seq ${seq} needs (${seq + 1}: the inputs and their next-token targets)`, fix)
    }
    const buffer = Buffer.allocUnsafe(chunkBytes)
    let largest = 0
    let firstOver = -1
    const ranges = checkedRanges(first * width, (first + tokens) * width, width, whole)
    for (const [from, stop] of ranges) {
      for (let offset = from; offset < stop; offset += chunkBytes) {
        const bytes = readAt(fd, buffer, Math.min(chunkBytes, stop - offset), offset)
        if (bytes % width !== 0 || bytes === 0) return ConfigError.make(field, path, "changed while it was read", "pass a file nothing is writing to")
        const ids = idsOf(buffer, bytes, dtype)
        let top = 0
        for (let i = 0; i < ids.length; i++) top = Math.max(top, ids[i] as number)
        if (top >= vocab && firstOver < 0) firstOver = offset / width + ids.findIndex((id) => id >= vocab)
        largest = Math.max(largest, top)
      }
    }
    const sampled = ranges.length > 1
    if (firstOver >= 0) {
      return ConfigError.make(
        field,
        path,
        `holds token ids up to ${largest}${sampled ? " in the samples read" : ""} (the first of ${vocab} or more at token ${firstOver}), not all below --vocab ${vocab}`,
        vocabFix(largest, dtype),
      )
    }
    return {
      path,
      dtype,
      tokens,
      ...(first === 0 ? {} : { first }),
      ...(field === "data" ? {} : { field }),
      ...(sampled ? { sampled: true as const } : {}),
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * Window `window` of `file` for sequences of `seq` tokens: seq + 1 ids starting at token
 * first + window * seq. Opens the file for the one read (a micro-batch reads a few windows a step; no
 * descriptor outlives the call). Throws where the file no longer holds them or holds an id of
 * `vocab` or more (it changed after `inspect`).
 * @category constructors
 */
export const read = (file: TokenFile, seq: number, window: number, vocab: number): Int32Array => {
  const width = bytesOf(file.dtype)
  const bytes = (seq + 1) * width
  const buffer = Buffer.alloc(bytes)
  const fd = openSync(file.path, "r")
  let got: number
  try {
    got = readAt(fd, buffer, bytes, ((file.first ?? 0) + window * seq) * width)
  } finally {
    closeSync(fd)
  }
  if (got !== bytes) throw new Error(`--data ${file.path}: window ${window} ends past the end of the file (it shrank after it was checked)`)
  const ids = idsOf(buffer, bytes, file.dtype)
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number
    if (id < vocab) continue
    const why =
      file.sampled === true ? `a file over ${wholeCheckBytes / 2 ** 30} GiB is checked in samples before the run and whole as it is read` : "it changed after it was checked"
    throw ConfigError.make(
      file.field ?? "data",
      file.path,
      `holds token id ${id} at token ${(file.first ?? 0) + window * seq + i}, not below --vocab ${vocab} (${why})`,
      vocabFix(id, file.dtype),
    )
  }
  return Int32Array.from(ids)
}

/** The fix for ids up to `largest` read as `dtype`. */
const vocabFix = (largest: number, dtype: TokenDtype): string =>
  `use --vocab ${largest + 1} or more (the tokenizer's vocabulary), or ${dtype === "uint16" ? "--data-dtype uint32 if it holds 4-byte ids" : "--data-dtype uint16 if it holds 2-byte ids"}`
