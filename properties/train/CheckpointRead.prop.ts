// A region of a parameter read from saved shards (CheckpointRead) is that region of the whole:
// random shapes of one to three dims cut into a random grid of shards (some saved twice, as
// replicas are), laid out in one file at random offsets in float32 or float64, and a random region
// read back equals Params.slice of the whole, bit for bit, whatever the window of reads (a few
// bytes, so runs longer than a window and windows of many runs are both taken, or the default).
// Shards that leave part of the region uncovered are refused; a shard outside it is never read.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import type * as DType from "../../src/tensor/DType.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as CheckpointRead from "../../src/train/CheckpointRead.js"
import * as Params from "../../src/train/Params.js"

const dir = mkdtempSync(path.join(tmpdir(), "pleat-region-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

/** Cuts of [0, n): sorted distinct points strictly inside, from `raw`. */
const cutsOf = (n: number, raw: ReadonlyArray<number>): Array<[number, number]> => {
  const points = [...new Set(raw.map((r) => 1 + (r % Math.max(1, n - 1))).filter((p) => p < n))].sort((a, b) => a - b)
  const edges = [0, ...points, n]
  return edges.slice(1).map((b, i) => [edges[i] as number, b])
}

const grid = (per: ReadonlyArray<ReadonlyArray<[number, number]>>): Array<Array<[number, number]>> =>
  per.reduce<Array<Array<[number, number]>>>((acc, ranges) => acc.flatMap((prefix) => ranges.map((r) => [...prefix, r])), [[]])

const arbitrary = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 3 }).chain((shape) =>
  fc.record({
    shape: fc.constant(shape),
    cuts: fc.tuple(...shape.map(() => fc.array(fc.nat(), { maxLength: 3 }))),
    want: fc.tuple(...shape.map((n) => fc.tuple(fc.integer({ min: 0, max: n }), fc.integer({ min: 0, max: n })))),
    dtype: fc.constantFrom<DType.DType>("float32", "float64"),
    replicate: fc.array(fc.boolean(), { maxLength: 30 }),
    gaps: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 30 }),
    window: fc.constantFrom(1, 4, 8, 24, 64, 1 << 24),
  }),
)

describe("a region read from saved shards", () => {
  test("equals that region of the whole, for any grid of shards, replicas and window", () => {
    fc.assert(
      fc.property(arbitrary, ({ shape, cuts, want, dtype, replicate, gaps, window }) => {
        const size = Tensor.sizeOf(shape)
        const whole = Tensor.fromArray(
          Array.from({ length: size }, (_, i) => (i + 1) / 7),
          shape,
          { dtype },
        )
        const slices = grid(shape.map((n, d) => cutsOf(n, cuts[d] as ReadonlyArray<number>)))
        // One file: each shard after a gap of a few elements, replicas saved again further on.
        const width = dtype === "float32" ? 4 : 8
        const chunks: Array<Uint8Array> = []
        const shards: Array<CheckpointRead.SavedShard> = []
        const file = path.join(dir, `rank-${files++}.bin`)
        let at = 0
        const save = (slice: Array<[number, number]>, i: number) => {
          const gap = (gaps[i % Math.max(1, gaps.length)] ?? 0) * width
          chunks.push(new Uint8Array(gap))
          at += gap
          const values = Params.slice(whole, slice).data
          chunks.push(new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice())
          shards.push({ file, slice, at })
          at += values.byteLength
        }
        slices.forEach((s, i) => save(s, i))
        slices.forEach((s, i) => {
          if (replicate[i] === true) save(s, i + 1)
        })
        writeFileSync(file, Buffer.concat(chunks))
        const region = want.map(([a, b]): [number, number] => [Math.min(a, b), Math.max(a, b)])
        const got = CheckpointRead.region(shards, region, dtype, window)
        expect(got.shape).toEqual(region.map(([a, b]) => b - a))
        expect(Array.from(got.data)).toEqual(Array.from(Params.slice(whole, region).data))
      }),
      { numRuns: 300 },
    )
  })

  test("shards that leave part of the region uncovered are refused; those outside it are not read", () => {
    const file = path.join(dir, "short.bin")
    writeFileSync(file, new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer))
    const top = { file, slice: [[0, 1] as const, [0, 3] as const], at: 0 }
    expect(() =>
      CheckpointRead.region(
        [top],
        [
          [0, 2],
          [0, 3],
        ],
        "float32",
      ),
    ).toThrow("shards cover 3 of the 6 elements of the region [0:2, 0:3]")
    // A shard whose bytes lie past the file's end, outside the region: never read.
    const beyond = { file, slice: [[1, 2] as const, [0, 3] as const], at: 1 << 20 }
    expect(
      Array.from(
        CheckpointRead.region(
          [top, beyond],
          [
            [0, 1],
            [1, 3],
          ],
          "float32",
        ).data,
      ),
    ).toEqual([2, 3])
    expect(() =>
      CheckpointRead.region(
        [top, beyond],
        [
          [0, 2],
          [1, 3],
        ],
        "float32",
      ),
    ).toThrow(/short\.bin has 24 bytes, too few for the 8 bytes of a shard from byte 1048580/)
  })
})
