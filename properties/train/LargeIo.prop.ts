// Reads and writes of any length: Node refuses one readSync or writeSync of more than 2^31 - 1
// bytes, and a checkpoint part (a parameter shard, a moment, a safetensors tensor) may hold up to
// 4 GiB, so CheckpointDurable.writeAll and PositionedRead.readFully ask for at most
// PositionedRead.maxCallBytes a call (and the checksum hashes at most 1 GiB an update: node's
// hash refuses more than 2^31 - 1 bytes at once). Before, a shard over 2 GiB (a 152,064 x 4,096
// float32 embedding) failed its save with "The value of "length" is out of range"; and a part
// is written as views of at most that much (a Uint8Array stops at 2^32 bytes, where an imported
// 5 GB embedding, whole, failed with "Invalid typed array length").
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import os from "node:os"
import path from "node:path"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as CheckpointChecksum from "../../src/train/CheckpointChecksum.js"
import * as CheckpointDurable from "../../src/train/CheckpointDurable.js"
import * as PositionedRead from "../../src/train/PositionedRead.js"

const dir = mkdtempSync(path.join(os.tmpdir(), "pleat-large-io-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("reads and writes of any length", () => {
  test("written and read back in calls of any size, the bytes are the same", () => {
    let n = 0
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: 0, max: 50 }), (data, perCall, at) => {
        const file = path.join(dir, `f${n++}`)
        const fd = openSync(file, "w")
        try {
          CheckpointDurable.writeAll(fd, new Uint8Array(at))
          CheckpointDurable.writeAll(fd, data, perCall)
        } finally {
          closeSync(fd)
        }
        expect(new Uint8Array(readFileSync(file)).subarray(at)).toEqual(data)
        const back = new Uint8Array(data.length + 2)
        const rd = openSync(file, "r")
        try {
          // Past the end the read stops short: only the file's bytes are read.
          expect(PositionedRead.readFully(rd, back, 1, data.length + 1, at, perCall)).toBe(data.length)
        } finally {
          closeSync(rd)
        }
        expect(back.subarray(1, 1 + data.length)).toEqual(data)
      }),
      { numRuns: 60 },
    )
  })

  test("a typed array's bytes as views of at most a piece each: in order, whole, each within the piece", () => {
    fc.assert(
      fc.property(fc.float32Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 100 }), (values, skip, piece) => {
        // A view that starts inside its buffer, as storage carved from a slab does.
        const a = values.subarray(Math.min(skip, values.length))
        const views = [...CheckpointDurable.byteViews(a, piece)]
        expect(views.every((v) => v.byteLength > 0 && v.byteLength <= piece)).toBe(true)
        const joined = new Uint8Array(views.reduce((n, v) => n + v.byteLength, 0))
        let at = 0
        for (const v of views) {
          joined.set(v, at)
          at += v.byteLength
        }
        expect(joined).toEqual(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
      }),
      { numRuns: 80 },
    )
  })

  test("more than 2^31 - 1 bytes in one write, one read and one checksum (the default calls), as a shard over 2 GiB needs", () => {
    const big = new Uint8Array(2 ** 31 + 16)
    big[big.length - 1] = 7
    const out = openSync("/dev/null", "w")
    try {
      expect(() => CheckpointDurable.writeAll(out, big)).not.toThrow()
    } finally {
      closeSync(out)
    }
    // A read asked for all of it (Node refused a length past 2^31 - 1 outright) of a file that
    // holds 100 bytes: those, then the end. Reading every byte would dirty 2 GiB of memory; the
    // buffer's untouched pages stay the kernel's shared zero page.
    const small = path.join(dir, "small")
    writeFileSync(small, new Uint8Array(100).fill(9))
    const rd = openSync(small, "r")
    try {
      expect(PositionedRead.readFully(rd, big, 0, big.length, 0)).toBe(100)
    } finally {
      closeSync(rd)
    }
    expect([big[0], big[99], big[100], big[big.length - 1]]).toEqual([9, 9, 0, 7])
    // A checksum of more than 2^31 - 1 bytes (node's hash takes at most that at once): the same
    // as of the same bytes given in two pieces split anywhere.
    big[12345] = 1
    const whole = CheckpointChecksum.of(big)
    const split = CheckpointChecksum.make()
    split.update(big.subarray(0, 2 ** 31 - 3))
    split.update(big.subarray(2 ** 31 - 3))
    expect(whole).toBe(split.digest())
    expect(whole).not.toBe(CheckpointChecksum.of(big.subarray(1)))
  }, 60_000)
})
