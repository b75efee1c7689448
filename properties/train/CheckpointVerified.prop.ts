// The files a process has found to match their checksums (CheckpointVerified): a key stays while
// the file is untouched, and changes when it is rewritten (its size or modification time) or
// checked against another checksum; keys handed over (`trust`, as the driver hands its keys to
// a threads job's workers) are found. Resumes on the threads backend (Threads.prop.ts,
// Backends.prop.ts) run through the handing over.
import { mkdtempSync, rmSync, writeFileSync, utimesSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as CheckpointVerified from "../../src/train/CheckpointVerified.js"

const dir = mkdtempSync(path.join(tmpdir(), "pleat-verified-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

describe("CheckpointVerified", () => {
  test("a key is the file's while it is untouched; a rewrite or another checksum is another key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 1e6 }), (first, second, seconds) => {
        const file = path.join(dir, `${files++}.bin`)
        writeFileSync(file, first)
        const { key, size } = CheckpointVerified.keyOf(file, "sha256:a")
        expect(size).toBe(first.byteLength)
        expect(CheckpointVerified.keyOf(file, "sha256:a").key).toBe(key)
        expect(CheckpointVerified.keyOf(file, "sha256:b").key).not.toBe(key)
        // Rewritten with other bytes, its time set apart from the first's: another key.
        writeFileSync(file, second)
        const { mtime } = statSync(file)
        utimesSync(file, mtime, new Date(mtime.getTime() + seconds * 1000))
        expect(CheckpointVerified.keyOf(file, "sha256:a").key).not.toBe(key)
      }),
      { numRuns: 50 },
    )
  })

  test("keys handed over (as the driver hands them to a threads job's workers) are found once trusted, and only those", () => {
    const file = path.join(dir, `${files++}.bin`)
    writeFileSync(file, new Uint8Array([1, 2, 3]))
    const { key } = CheckpointVerified.keyOf(file, "sha256:c")
    expect(CheckpointVerified.has(key)).toBe(false)
    CheckpointVerified.trust([key])
    expect(CheckpointVerified.has(key)).toBe(true)
    expect(CheckpointVerified.keys()).toContain(key)
    expect(CheckpointVerified.has(CheckpointVerified.keyOf(file, "sha256:d").key)).toBe(false)
  })
})
