// Safetensors files written by pleat read back as written, whether read whole (`read`, the
// bytes at any offset of a larger buffer, so typed views of them may be unaligned) or a tensor at
// a time from the file (`open`): F64 exactly, F32 as each value rounded to float32, BF16 as the
// float32 rounded to nearest, ties to even, the top 16 bits (negative values, zeros, infinities
// and NaN included), U8 as its bytes. Tensors of zero elements and files that are not safetensors
// are handled as documented.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import * as Safetensors from "../../src/train/Safetensors.js"

const dir = mkdtempSync(path.join(tmpdir(), "pleat-safetensors-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

const expected = (values: Float64Array, dtype: Safetensors.Dtype): Array<number> => {
  if (dtype === "F64") return Array.from(values)
  const single = Float32Array.from(values)
  if (dtype === "F32") return Array.from(single)
  const rounded = new Float32Array(single.length)
  Bf16Round.roundInto(single, rounded)
  return Array.from(rounded)
}

const special = fc.constantFrom(0, -0, 1, -1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 3.4e38, 1e-45, 65504.5)

describe("safetensors", () => {
  test("what is written reads back, whole at any offset or a tensor at a time", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dtype: fc.constantFrom<Safetensors.Dtype>("F64", "F32", "BF16"),
            values: fc.array(fc.oneof(fc.double(), special), { maxLength: 40 }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.integer({ min: 0, max: 7 }),
        (tensors, offset) => {
          const entries = tensors.map((t, i): Safetensors.Entry => {
            const values = Float64Array.from(t.values)
            return { name: `t${i}`, dtype: t.dtype, shape: [values.length], bytes: () => Safetensors.encode(values, t.dtype) }
          })
          const file = path.join(dir, `${files++}.safetensors`)
          Safetensors.write(file, entries)
          const bytes = readFileSync(file)
          const shifted = new Uint8Array(bytes.length + offset)
          shifted.set(bytes, offset)
          const whole = Safetensors.read(shifted.subarray(offset))
          const lazy = Safetensors.open(file)
          tensors.forEach((t, i) => {
            const want = expected(Float64Array.from(t.values), t.dtype)
            for (const got of [whole.get(`t${i}`)?.values, lazy.get(`t${i}`)?.values()]) {
              expect(got?.length).toBe(want.length)
              // Object.is: NaN equals NaN, -0 differs from 0.
              expect(Array.from(got ?? []).every((v, k) => Object.is(v, want[k]))).toBe(true)
            }
            expect([lazy.get(`t${i}`)?.dtype, lazy.get(`t${i}`)?.shape]).toEqual([t.dtype, [t.values.length]])
          })
        },
      ),
      { numRuns: 200 },
    )
  })

  test("a slab of entries of the first dimension reads those entries alone, from the file or from memory; one past the end is refused", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Safetensors.Dtype>("F64", "F32", "BF16"),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 1e6 }),
        (dtype, shape, a, b, seed) => {
          const count = shape.reduce((p, d) => p * d, 1)
          const values = Float64Array.from({ length: count }, (_, i) => Math.sin(seed + i) * 1e3)
          const file = path.join(dir, `${files++}.safetensors`)
          // A tensor before it, so the slab's bytes start past the header at an odd offset.
          Safetensors.write(file, [
            { name: "a", dtype: "BF16", shape: [3], bytes: () => Safetensors.encode(new Float64Array(3), "BF16") },
            { name: "t", dtype, shape, bytes: () => Safetensors.encode(values, dtype) },
          ])
          const entries = shape[0] as number
          const [first, last] = [Math.min(a, entries), Math.min(a + b, entries)]
          const entry = count / Math.max(entries, 1)
          const want = expected(values, dtype).slice(first * entry, last * entry)
          for (const t of [Safetensors.open(file).get("t"), Safetensors.lazily(Safetensors.read(readFileSync(file))).get("t")]) {
            expect(Array.from(t?.slab(first, last - first) ?? [])).toEqual(want)
          }
          expect(() => Safetensors.open(file).get("t")?.slab(entries, 1)).toThrow(`entries [${entries}, ${entries + 1}) of t, whose first dimension has ${entries}`)
          // Slabs of at most `a + 1` elements (one entry at least) tile the tensor in order.
          const seen: Array<number> = []
          Safetensors.eachSlab(
            Safetensors.open(file).get("t") as Safetensors.Lazy,
            (slab, from, firstEntry, entriesRead) => {
              expect([from, firstEntry * entry, slab.length]).toEqual([seen.length, from, entriesRead * entry])
              expect(entriesRead === 1 || slab.length <= a + 1).toBe(true)
              seen.push(...slab)
            },
            a + 1,
          )
          expect(seen).toEqual(expected(values, dtype))
        },
      ),
      { numRuns: 150 },
    )
  })

  test("a tensor's bytes made in pieces write the same file as made whole; pieces of too few or too many bytes are refused naming the tensor", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true }), { minLength: 1, maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 4 }), (list, cuts) => {
        const values = Float64Array.from(list)
        const bytes = Safetensors.encode(values, "F64")
        const at = [0, ...cuts.map((c) => Math.min(c, list.length)).sort((x, y) => x - y), list.length].map((k) => 8 * k)
        const pieces = at.slice(1).map((end, i) => bytes.subarray(at[i] as number, end))
        const [whole, cut] = [path.join(dir, `${files++}.safetensors`), path.join(dir, `${files++}.safetensors`)]
        Safetensors.write(whole, [{ name: "t", dtype: "F64", shape: [list.length], bytes: () => bytes }])
        Safetensors.write(cut, [{ name: "t", dtype: "F64", shape: [list.length], bytes: () => pieces }])
        expect(readFileSync(cut).equals(readFileSync(whole))).toBe(true)
      }),
      { numRuns: 50 },
    )
    const entry = (pieces: ReadonlyArray<number>): Safetensors.Entry => ({ name: "t", dtype: "F32", shape: [3], bytes: () => pieces.map((n) => new Uint8Array(n)) })
    expect(() => Safetensors.write(path.join(dir, `${files++}.safetensors`), [entry([4, 4])])).toThrow("safetensors: t made 8 bytes, its F32 [3] needs 12")
    expect(() => Safetensors.write(path.join(dir, `${files++}.safetensors`), [entry([8, 8])])).toThrow("safetensors: t made 16 bytes, its F32 [3] needs 12")
  })

  test("bytes (U8) read as 0 to 255; a file that is not safetensors is refused saying why", () => {
    const header = Buffer.from(JSON.stringify({ b: { dtype: "U8", shape: [2, 2], data_offsets: [0, 4] } }))
    const length = Buffer.alloc(8)
    length.writeBigUInt64LE(BigInt(header.length))
    const file = path.join(dir, "bytes.safetensors")
    writeFileSync(file, Buffer.concat([length, header, Buffer.from([0, 7, 128, 255])]))
    expect(Array.from(Safetensors.open(file).get("b")?.values() ?? [])).toEqual([0, 7, 128, 255])
    const short = path.join(dir, "short.safetensors")
    writeFileSync(short, Buffer.from([1, 2, 3]))
    expect(() => Safetensors.open(short)).toThrow("3 bytes, fewer than the 8 of a header's length")
    writeFileSync(short, Buffer.concat([length, header, Buffer.from([0, 7])]))
    expect(() => Safetensors.open(short)).toThrow("b at bytes [0, 4) of the data, which does not hold its U8 [2, 2] in the file")
    writeFileSync(short, Buffer.concat([Buffer.from([255, 0, 0, 0, 0, 0, 0, 0]), header]))
    expect(() => Safetensors.open(short)).toThrow(/a header of 255 bytes in a file of \d+/)
  })
})
