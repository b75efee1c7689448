// A Megatron-LM dataset's index read through windows (WindowedFile), not whole: readFileSync
// stops at 2 GiB (~100M documents in one index). Any integer at any offset reads as the whole
// file's bytes say, whatever the window, and the document starts of an index, read from it when
// asked in any order (nothing per document is held), are the same through windows of 8 bytes up
// as through one window over all of it.
import { writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as MegatronIndex from "../../src/train/MegatronIndex.js"
import * as WindowedFile from "../../src/train/WindowedFile.js"
import { fresh } from "../cli/cliRun.js"
import { dataset } from "../cli/megatronDataset.js"

describe("an index read through windows", () => {
  test("any int32, int64 or uint64 at any offset is the file's, through a window of any size; past the end is a RangeError", () => {
    const dir = fresh("windowed-file")
    let n = 0
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 600 }),
        fc.integer({ min: 8, max: 100 }),
        fc.array(fc.tuple(fc.constantFrom("int32" as const, "int64" as const, "uint64" as const), fc.nat()), { minLength: 1, maxLength: 40 }),
        (bytes, window, reads) => {
          const file = path.join(dir, `f${n++}`)
          writeFileSync(file, bytes)
          const whole = Buffer.from(bytes)
          const w = WindowedFile.open(file, window)
          try {
            expect(w.size).toBe(bytes.length)
            for (const [kind, offset] of reads) {
              const width = kind === "int32" ? 4 : 8
              const at = offset % (bytes.length - width + 1)
              const want = kind === "int32" ? whole.readInt32LE(at) : Number(kind === "int64" ? whole.readBigInt64LE(at) : whole.readBigUInt64LE(at))
              expect(w[kind](at)).toBe(want)
            }
            expect(() => w.int64(bytes.length - 4)).toThrow(RangeError)
          } finally {
            w.close()
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  test("a dataset's document starts are the same through small windows as through one over the whole index", () => {
    const dir = fresh("megatron-index")
    let n = 0
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 80 }), fc.integer({ min: 8, max: 200 }), (lengths, window) => {
        const prefix = dataset(
          dir,
          `d${n++}`,
          lengths.map((len) => Array.from({ length: len }, (_, i) => i % 7)),
        )
        const starts = [0]
        for (const len of lengths) starts.push((starts.at(-1) as number) + len)
        for (const windowBytes of [undefined, window]) {
          const table = MegatronIndex.documentTable(prefix, "uint16", "--data-path", windowBytes)
          if (ConfigError.isConfigError(table)) throw new Error(table.message)
          try {
            expect(table.documents).toBe(lengths.length)
            // In a drawn order: the table reads each start from the index when asked.
            const order = starts.map((_, d) => (d * 7919) % starts.length)
            expect(order.map((d) => table.startOf(d))).toEqual(order.map((d) => starts[d]))
          } finally {
            table.close()
          }
        }
      }),
      { numRuns: 40 },
    )
  })
})
