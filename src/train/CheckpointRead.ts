/**
 * CheckpointRead: a region of a parameter read from the saved shards of a checkpoint's rank
 * files, and nothing more: a rank resuming under another mapping reads the part of each saved
 * shard that overlaps its own slice, never the whole parameter (an embedding of 200k rows saved
 * whole by one rank is read by each of eight tp ranks as its eighth).
 *
 * Each saved shard holds its slice of the parameter row-major from a byte offset of its file. The
 * intersection of the slice with the wanted region is a box; its contiguous runs in the shard
 * (Params.forEachRun) come in increasing order, so they are read in windows of at most
 * `windowBytes` (one positional read a window, a run longer than that on its own), gathered into
 * the box, and the box placed into the region; runs of 64 KiB and more are read straight into
 * the box, and a shard that holds the whole region is read straight into it. Replicas (shards of
 * one slice) are read once. Memory: the region, one box and one window.
 */
import { closeSync, fstatSync, openSync } from "node:fs"
import * as DType from "../tensor/DType.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Params from "./Params.js"
import * as PositionedRead from "./PositionedRead.js"

/**
 * One saved shard of a parameter: where its values lie.
 * @category models
 */
export interface SavedShard {
  /** The rank file that holds it. */
  readonly file: string
  /** Its slice of the parameter, per dim [begin, end). */
  readonly slice: ReadonlyArray<readonly [number, number]>
  /** The byte offset of its first value in the file. */
  readonly at: number
  /** Called before its bytes are first read (a checkpoint's check of its file). */
  readonly verify?: () => void
}

/** The bytes a window of reads spans at most. */
const defaultWindowBytes = 1 << 24

/** Reads exactly `length` bytes of `fd` from byte `at` into `into` at `offset`. */
const readExact = (fd: number, into: Uint8Array, offset: number, length: number, at: number, file: string): void => {
  if (PositionedRead.readFully(fd, into, offset, length, at) < length)
    throw new RangeError(`${file} has ${fstatSync(fd).size} bytes, too few for the ${length} bytes of a shard from byte ${at}`)
}

/**
 * The values of `box` (in the shard's own coordinates) read from the shard `s` into `part` (the
 * box's size): runs of at least `directBytes` straight into it, shorter ones through windows.
 */
const readBox = (s: SavedShard, box: ReadonlyArray<[number, number]>, part: DType.Storage, dtype: DType.DType, windowBytes: number): void => {
  const width = DType.bytesPer(dtype)
  const directBytes = Math.min(windowBytes, 1 << 16)
  const bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength)
  // Each run as (from in the shard, to in the box, length), in increasing `from`.
  const runs: Array<number> = []
  Params.forEachRun(
    s.slice.map(([a, b]) => b - a),
    box,
    (from, to, length) => runs.push(from, to, length),
  )
  const fd = openSync(s.file, "r")
  try {
    for (let i = 0; i < runs.length; ) {
      const start = runs[i] as number
      let j = i
      while (j < runs.length && ((runs[j] as number) + (runs[j + 2] as number) - start) * width <= windowBytes) j += 3
      if (j === i || (j === i + 3 && (runs[i + 2] as number) * width >= directBytes)) {
        // A long run (or one longer than a window): read straight into the box.
        readExact(fd, bytes, (runs[i + 1] as number) * width, (runs[i + 2] as number) * width, s.at + start * width, s.file)
        i += 3
        continue
      }
      const span = ((runs[j - 3] as number) + (runs[j - 1] as number) - start) * width
      const window = Buffer.allocUnsafe(span)
      readExact(fd, window, 0, span, s.at + start * width, s.file)
      for (let k = i; k < j; k += 3) {
        const from = ((runs[k] as number) - start) * width
        bytes.set(window.subarray(from, from + (runs[k + 2] as number) * width), (runs[k + 1] as number) * width)
      }
      i = j
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * The region `want` (per dim [begin, end) of the parameter) of one saved field, in `dtype`, from
 * the saved shards of it; throws a RangeError when they leave part of the region uncovered.
 * @category constructors
 */
export const region = (
  shards: ReadonlyArray<SavedShard>,
  want: ReadonlyArray<readonly [number, number]>,
  dtype: DType.DType,
  windowBytes: number = defaultWindowBytes,
): Tensor.Tensor => {
  const shape = want.map(([a, b]) => b - a)
  // Every element is written once the shards cover the region (else this throws).
  const out = DType.allocateUninitialized(dtype, Tensor.sizeOf(shape))
  let covered = 0
  const seen = new Set<string>()
  for (const s of shards) {
    const key = JSON.stringify(s.slice)
    if (seen.has(key)) continue
    seen.add(key)
    const box = want.map(([a, b], d): [number, number] => [Math.max(a, (s.slice[d] as readonly [number, number])[0]), Math.min(b, (s.slice[d] as readonly [number, number])[1])])
    if (box.some(([a, b]) => a >= b)) continue
    const inShard = box.map(([a, b], d): [number, number] => [a - (s.slice[d] as readonly [number, number])[0], b - (s.slice[d] as readonly [number, number])[0]])
    const whole = box.every(([a, b], d) => a === (want[d] as readonly [number, number])[0] && b === (want[d] as readonly [number, number])[1])
    // A shard holding the whole region is read straight into it (the box is the region).
    const part = whole ? out : DType.allocateUninitialized(dtype, Tensor.sizeOf(box.map(([a, b]) => b - a)))
    s.verify?.()
    readBox(s, inShard, part, dtype, windowBytes)
    covered += part.length
    if (whole) continue
    Params.forEachRun(
      shape,
      box.map(([a, b], d): [number, number] => [a - (want[d] as readonly [number, number])[0], b - (want[d] as readonly [number, number])[0]]),
      (from, to, length) => out.set(part.subarray(to, to + length), from),
    )
  }
  if (covered !== out.length) throw new RangeError(`shards cover ${covered} of the ${out.length} elements of the region [${want.map(([a, b]) => `${a}:${b}`).join(", ")}]`)
  return Tensor.fromStorage(out, shape)
}
