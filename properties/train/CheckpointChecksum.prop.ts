// The checksum a checkpoint records (FNV-1a 64): known values from the algorithm's definition,
// the same hash whatever pieces the bytes are fed in (a rank file is written and checked piece by
// piece), and a file hashed 16 MiB at a time equal to its bytes hashed at once, across the piece
// boundary.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Checksum from "../../src/train/CheckpointChecksum.js"

const text = (s: string) => new TextEncoder().encode(s)

describe("the checkpoint checksum", () => {
  test("FNV-1a 64's published values", () => {
    expect(Checksum.of(new Uint8Array(0))).toBe("cbf29ce484222325")
    expect(Checksum.of(text("a"))).toBe("af63dc4c8601ec8c")
    expect(Checksum.of(text("foobar"))).toBe("85944171f73967e8")
  })

  test("fed in any pieces, the hash of the bytes back to back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
        const h = Checksum.make()
        let from = 0
        for (const c of [...at, bytes.length]) {
          h.update(bytes.subarray(from, c))
          from = c
        }
        expect(h.digest()).toBe(Checksum.of(bytes))
      }),
    )
  })

  test("a file read in pieces: its hash and size, past the 16 MiB piece", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-checksum-"))
    try {
      const bytes = new Uint8Array((1 << 24) + 12345)
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24
      const file = path.join(dir, "rank-0.bin")
      writeFileSync(file, bytes)
      expect(Checksum.ofFile(file)).toEqual({ checksum: Checksum.of(bytes), bytes: bytes.length })
      bytes[(1 << 24) + 7] = (bytes[(1 << 24) + 7] as number) ^ 1
      writeFileSync(file, bytes)
      expect(Checksum.ofFile(file).checksum).toBe(Checksum.of(bytes))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
