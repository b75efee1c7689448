// Training data from a token file (--data): the window order is a permutation of the windows every
// epoch, an epoch's sequences cover the file's first W * seq tokens exactly once with their
// next-token targets, ids are read as the file stores them (uint16, uint32 past 2^31), and a file
// that cannot work is a ConfigError naming the value and the fix (before the run, or, for an id
// over the vocabulary in a file too large to read whole first, when a window holding it is read).
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Data from "../../src/train/Data.js"
import * as TokenFile from "../../src/train/TokenFile.js"
import * as WindowOrder from "../../src/train/WindowOrder.js"

const seed = fc.integer({ min: 0, max: 2 ** 32 - 1 })

/** Writes `ids` as a token file of `dtype`; returns its path. */
const tokenFile = (ids: ReadonlyArray<number>, dtype: TokenFile.TokenDtype): string => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "pleat-data-")), "train.bin")
  const bytes = Buffer.alloc(ids.length * TokenFile.bytesOf(dtype))
  ids.forEach((id, i) => (dtype === "uint16" ? bytes.writeUInt16LE(id, 2 * i) : bytes.writeUInt32LE(id, 4 * i)))
  writeFileSync(file, bytes)
  return file
}

describe("WindowOrder", () => {
  test("every epoch reads each window exactly once", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), seed, fc.integer({ min: 0, max: 1000 }), (windows, s, epoch) => {
        const seen = new Uint8Array(windows)
        for (let j = 0; j < windows; j++) {
          const w = WindowOrder.windowOf(s, epoch * windows + j, windows)
          expect(Number.isInteger(w) && w >= 0 && w < windows).toBe(true)
          seen[w] = (seen[w] as number) + 1
        }
        expect(seen.every((n) => n === 1)).toBe(true)
      }),
      { numRuns: 60 },
    )
  })

  test("the order is shuffled, and differs between epochs and between seeds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 32, max: 2000 }), seed, (windows, s) => {
        const order = (sd: number, epoch: number) => Array.from({ length: windows }, (_, j) => WindowOrder.windowOf(sd, epoch * windows + j, windows))
        const first = order(s, 0)
        expect(first).not.toEqual(Array.from({ length: windows }, (_, j) => j))
        expect(order(s, 1)).not.toEqual(first)
        expect(order((s + 1) >>> 0, 0)).not.toEqual(first)
        expect(order(s, 0)).toEqual(first)
      }),
      { numRuns: 30 },
    )
  })

  test("files of billions of windows: in range and one-to-one on a sample", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2 ** 20, max: 2 ** 40 }), seed, fc.array(fc.integer({ min: 0, max: 2 ** 45 }), { minLength: 2, maxLength: 20 }), (windows, s, indices) => {
        const epochOf = Math.floor((indices[0] as number) / windows)
        const same = [...new Set(indices.map((i) => epochOf * windows + (i % windows)))]
        const got = same.map((i) => WindowOrder.windowOf(s, i, windows))
        for (const w of got) expect(w >= 0 && w < windows && Number.isInteger(w)).toBe(true)
        expect(new Set(got).size).toBe(same.length)
      }),
      { numRuns: 40 },
    )
  })

  test("refuses what is not a count of windows or an index", () => {
    expect(() => WindowOrder.windowOf(1, 0, 0)).toThrow(RangeError)
    expect(() => WindowOrder.windowOf(1, -1, 5)).toThrow(RangeError)
    expect(() => WindowOrder.windowOf(1, 0, 2 ** 49)).toThrow(RangeError)
  })
})

describe("a token file's micro-batches", () => {
  const job = fc.record({
    dtype: fc.constantFrom<TokenFile.TokenDtype>("uint16", "uint32"),
    seq: fc.integer({ min: 1, max: 12 }),
    vocab: fc.integer({ min: 2, max: 70_000 }),
    extra: fc.integer({ min: 1, max: 60 }),
    microBatch: fc.integer({ min: 1, max: 3 }),
    dp: fc.integer({ min: 1, max: 3 }),
    microBatches: fc.integer({ min: 1, max: 3 }),
    seed,
  })

  test("one epoch of steps covers the file's windows once: inputs are the file's tokens, targets the next ones", () => {
    fc.assert(
      fc.property(job, fc.integer({ min: 0, max: 2 ** 31 }), (j, fill) => {
        const vocab = j.dtype === "uint16" ? Math.min(j.vocab, 65_536) : j.vocab
        const n = j.seq + j.extra
        const ids = Array.from({ length: n }, (_, i) => (Math.imul(i + 1, 2654435761) ^ fill) >>> 0).map((h) => h % vocab)
        const file = TokenFile.inspect(tokenFile(ids, j.dtype), j.dtype, j.seq, vocab)
        if (ConfigError.isConfigError(file)) throw file
        expect(file.tokens).toBe(n)
        const windows = TokenFile.windows(file, j.seq)
        expect(windows).toBe(Math.floor((n - 1) / j.seq))
        const globalBatch = j.microBatch * j.microBatches * j.dp
        const covered = new Int32Array(windows * j.seq)
        // Enough steps for one epoch; sequences past it start the next one and are not counted.
        const steps = Math.ceil(windows / globalBatch)
        for (let step = 0; step < steps; step++) {
          for (let d = 0; d < j.dp; d++) {
            for (let index = 0; index < j.microBatches; index++) {
              const mb = Data.microBatch({ seed: j.seed, step, dpRank: d, index, microBatch: j.microBatch, microBatches: j.microBatches, globalBatch, seq: j.seq, vocab, file })
              for (let b = 0; b < j.microBatch; b++) {
                const sequenceIndex = step * globalBatch + d * j.microBatches * j.microBatch + index * j.microBatch + b
                const start = WindowOrder.windowOf(j.seed, sequenceIndex, windows) * j.seq
                const inputs = Array.from(mb.tokens.subarray(b * j.seq, (b + 1) * j.seq))
                expect(inputs).toEqual(ids.slice(start, start + j.seq))
                expect(Array.from(mb.targets.subarray(b * j.seq, (b + 1) * j.seq))).toEqual(ids.slice(start + 1, start + j.seq + 1))
                if (sequenceIndex < windows) for (let t = 0; t < j.seq; t++) covered[start + t] = (covered[start + t] as number) + 1
              }
            }
          }
        }
        expect(covered.every((c) => c === 1)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test("uint32 ids at and past 2^31 are read as the file stores them", () => {
    const ids = [0, 2 ** 31, 2 ** 32 - 2, 7, 2 ** 31 + 5]
    const file = TokenFile.inspect(tokenFile(ids, "uint32"), "uint32", 4, 2 ** 32 - 1)
    if (ConfigError.isConfigError(file)) throw file
    expect(Array.from(TokenFile.read(file, 4, 0, 2 ** 32 - 1))).toEqual(ids.map((id) => id | 0))
  })
})

describe("a token file that cannot work is refused with the fix", () => {
  const problem = (ids: ReadonlyArray<number>, dtype: TokenFile.TokenDtype, seq: number, vocab: number, extraByte = false): string => {
    const file = tokenFile(ids, dtype)
    if (extraByte) writeFileSync(file, Buffer.concat([Buffer.alloc(ids.length * TokenFile.bytesOf(dtype)), Buffer.from([1])]))
    const got = TokenFile.inspect(file, dtype, seq, vocab)
    expect(ConfigError.isConfigError(got)).toBe(true)
    return (got as ConfigError.ConfigError).message
  }

  test("ids at or above the vocabulary: the largest named, --vocab one above it", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<TokenFile.TokenDtype>("uint16", "uint32"),
        fc.integer({ min: 2, max: 60_000 }),
        fc.array(fc.integer({ min: 0, max: 65_535 }), { minLength: 3, maxLength: 300 }),
        (dtype, vocab, ids) => {
          const largest = Math.max(...ids)
          if (largest < vocab) return
          const first = ids.findIndex((id) => id >= vocab)
          expect(problem(ids, dtype, 2, vocab)).toContain(
            `holds token ids up to ${largest} (the first of ${vocab} or more at token ${first}), not all below --vocab ${vocab}; fix: use --vocab ${largest + 1} or more`,
          )
        },
      ),
      { numRuns: 60 },
    )
  })

  test("the sampled check's ranges: the whole range up to the limit; past it, ordered disjoint whole ids from its first to its last, about the limit in all", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(2, 4),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 1, max: 200_000 }),
        fc.integer({ min: 4, max: 50_000 }),
        (width, startIds, spanIds, whole) => {
          const start = startIds * width
          const stop = start + spanIds * width
          const ranges = TokenFile.checkedRanges(start, stop, width, whole)
          if (stop - start <= whole) {
            expect(ranges).toEqual([[start, stop]])
            return
          }
          expect(ranges[0]?.[0]).toBe(start)
          expect(ranges.at(-1)?.[1]).toBe(stop)
          let before = start
          let total = 0
          for (const [from, to] of ranges) {
            expect(from >= before && to > from && to <= stop && from % width === 0 && to % width === 0).toBe(true)
            before = to
            total += to - from
          }
          expect(total).toBeLessThanOrEqual(Math.max(whole, TokenFile.samples * width))
        },
      ),
      { numRuns: 300 },
    )
  })

  test("a file past the whole check: an id over the vocabulary is refused before the run when a sample holds it, else when a window that holds it is read (a ConfigError naming the flag)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<TokenFile.TokenDtype>("uint16", "uint32"),
        fc.integer({ min: 40, max: 400 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 2, max: 9 }),
        fc.integer({ min: 8, max: 200 }),
        (dtype, n, at, seq, whole) => {
          const vocab = 50
          const bad = at % n
          const ids = Array.from({ length: n }, (_, i) => (i === bad ? vocab + 7 : (i * 13) % vocab))
          const width = TokenFile.bytesOf(dtype)
          const file = TokenFile.inspect(tokenFile(ids, dtype), dtype, seq, vocab, "eval-data", undefined, whole)
          const sampled = n * width > whole
          const seen = TokenFile.checkedRanges(0, n * width, width, whole).some(([from, to]) => bad * width >= from && bad * width < to)
          expect(ConfigError.isConfigError(file)).toBe(seen)
          if (ConfigError.isConfigError(file)) {
            expect(file.message).toContain(`(the first of ${vocab} or more at token ${bad})`)
            return
          }
          expect(file.sampled === true).toBe(sampled)
          for (let w = 0; w < TokenFile.windows(file, seq); w++) {
            const holds = bad >= w * seq && bad <= w * seq + seq
            let error: unknown
            try {
              TokenFile.read(file, seq, w, vocab)
            } catch (e) {
              error = e
            }
            expect(error !== undefined).toBe(holds)
            if (holds) {
              expect(ConfigError.isConfigError(error) && error.field).toBe("eval-data")
              expect(String(error)).toContain(`holds token id ${vocab + 7} at token ${bad}, not below --vocab ${vocab} (a file over 1 GiB is checked in samples`)
            }
          }
        },
      ),
      { numRuns: 80 },
    )
  })

  test("a size that is not a whole number of ids, a file shorter than one sequence, no file", () => {
    expect(problem([1, 2, 3], "uint16", 2, 10, true)).toContain("is 7 bytes, not a whole number of 2-byte uint16 ids")
    expect(problem([1, 2, 3, 4, 5], "uint32", 2, 10, true)).toContain("--data-dtype uint16 if it holds 2-byte ids")
    expect(problem([1, 2, 3], "uint16", 5, 10)).toContain(
      "holds 3 tokens, fewer than one sequence of --seq 5 needs (6: the inputs and their next-token targets); fix: use --seq 2 or less",
    )
    const missing = TokenFile.inspect(path.join(tmpdir(), "pleat-no-such-dir", "train.bin"), "uint16", 4, 10)
    expect(ConfigError.isConfigError(missing) && missing.message).toContain("cannot be read (ENOENT)")
    const directory = TokenFile.inspect(mkdtempSync(path.join(tmpdir(), "pleat-data-")), "uint16", 4, 10)
    expect(ConfigError.isConfigError(directory) && directory.message).toContain("is not a file")
  })

  test("a named pipe is refused unopened (opening it would wait for a writer forever): pleat train exits 2 in one line", () => {
    const fifo = path.join(mkdtempSync(path.join(tmpdir(), "pleat-data-")), "tokens.fifo")
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0)
    // In a process of its own, with a time limit: a blocked open cannot be timed out in this one.
    const cli = path.resolve(import.meta.dirname, "..", "..", "dist", "cli", "main.js")
    const run = spawnSync(process.execPath, [cli, "train", "--data", fifo, "--steps", "1"], { encoding: "utf8", timeout: 60_000 })
    expect(run.signal, "pleat train waited on the pipe").toBeNull()
    expect(run.status).toBe(2)
    expect(run.stderr.trim()).toBe(`pleat train: --data: ${JSON.stringify(fifo)} is not a file; fix: pass the path of a file of token ids`)
  })
})
