// The checksum a checkpoint records: SHA-256 and FNV-1a 64 (older checkpoints') give their
// published values; the same hash whatever pieces the bytes are fed in (a rank file is written
// and checked piece by piece); a file hashed 16 MiB at a time equals its bytes hashed at once,
// across the piece boundary; and a checkpoint whose manifest records FNV-1a 64, as checkpoints
// written before SHA-256 do, still resumes to the same losses, its damaged files still named.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, onTestFinished, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Checksum from "../../src/train/CheckpointChecksum.js"
import * as CheckpointDirectory from "../../src/train/CheckpointDirectory.js"
import * as Train from "../../src/train/Train.js"
import { smallJob } from "./arbitraries.js"

const text = (s: string) => new TextEncoder().encode(s)

const scratch = (label: string): string => {
  const dir = mkdtempSync(path.join(tmpdir(), `pleat-${label}-`))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe("the checkpoint checksum", () => {
  test("SHA-256's and FNV-1a 64's published values, each recorded in its own form", () => {
    expect(Checksum.of(new Uint8Array(0))).toBe("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    expect(Checksum.of(text("abc"))).toBe("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    expect(Checksum.of(new Uint8Array(0), "fnv1a64")).toBe("cbf29ce484222325")
    expect(Checksum.of(text("a"), "fnv1a64")).toBe("af63dc4c8601ec8c")
    expect(Checksum.of(text("foobar"), "fnv1a64")).toBe("85944171f73967e8")
    expect([Checksum.algorithmOf(Checksum.of(text("a"))), Checksum.algorithmOf("af63dc4c8601ec8c")]).toEqual(["sha256", "fnv1a64"])
  })

  test("fed in any pieces, the hash of the bytes back to back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom<Checksum.Algorithm>("sha256", "fnv1a64"), (bytes, cuts, algorithm) => {
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
        const h = Checksum.make(algorithm)
        let from = 0
        for (const c of [...at, bytes.length]) {
          h.update(bytes.subarray(from, c))
          from = c
        }
        expect(h.digest()).toBe(Checksum.of(bytes, algorithm))
      }),
    )
  })

  test("a file read in pieces: its hash and size, past the 16 MiB piece", () => {
    const bytes = new Uint8Array((1 << 24) + 12345)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24
    const file = path.join(scratch("checksum"), "rank-0.bin")
    writeFileSync(file, bytes)
    expect(Checksum.ofFile(file)).toEqual({ checksum: Checksum.of(bytes), bytes: bytes.length })
    bytes[(1 << 24) + 7] = (bytes[(1 << 24) + 7] as number) ^ 1
    writeFileSync(file, bytes)
    expect(Checksum.ofFile(file).checksum).toBe(Checksum.of(bytes))
    expect(Checksum.ofFile(file, "fnv1a64").checksum).toBe(Checksum.of(bytes, "fnv1a64"))
  })

  test("a checkpoint recording FNV-1a 64 (written before SHA-256) resumes as it did; a damaged file is named", async () => {
    const dir = path.join(scratch("checksum-ckpt"), "ckpt")
    const steps = 3
    const whole = await Effect.runPromise(Train.run(smallJob(steps), { steps }))
    await Effect.runPromise(Train.run(smallJob(steps), { steps: 1, save: dir }))
    const stepDir = CheckpointDirectory.locate(dir) as string
    const manifestFile = path.join(stepDir, "manifest.json")
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as { checksums: Record<string, string> }
    expect(Object.values(manifest.checksums).every((c) => Checksum.algorithmOf(c) === "sha256")).toBe(true)
    const rankFiles = readdirSync(stepDir).filter((f) => f.startsWith("rank-"))
    manifest.checksums = Object.fromEntries(rankFiles.map((f) => [f, Checksum.of(readFileSync(path.join(stepDir, f)), "fnv1a64")]))
    writeFileSync(manifestFile, JSON.stringify(manifest))
    const resumed = await Effect.runPromise(Train.run(smallJob(steps), { steps, resume: dir }))
    expect(resumed.map((s) => s.loss)).toEqual(whole.slice(1).map((s) => s.loss))
    const bin = path.join(stepDir, "rank-1.bin")
    const bytes = readFileSync(bin)
    bytes[5] = (bytes[5] as number) ^ 0x10
    writeFileSync(bin, bytes)
    expect(() => Checkpoint.values(dir)).toThrow(/has a damaged step-\d+\/rank-1\.bin \(checksum [0-9a-f]{16}, manifest\.json records [0-9a-f]{16}\)/)
  }, 60_000)
})
