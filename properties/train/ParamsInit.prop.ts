// Initial parameters and shard copies (train/Params): a rank's shard made directly
// (initialSlice) equals the shard cut from the whole initial tensor as the sequential stream
// makes it (mulberry32 + Box-Muller, element by element: the reference below), bit for bit, for
// random shapes, regions and both dtypes; slice and assemble are exact inverses over the shards
// of any split, and slice equals the element-by-element index formula.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type * as DType from "../../src/tensor/DType.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as ParamInit from "../../src/train/ParamInit.js"
import * as Params from "../../src/train/Params.js"

/** The sequential stream as first written: one state advanced by the constant per uniform. */
const sequentialNormals = (seed: number, n: number, std: number): Float64Array => {
  let s = seed >>> 0
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296
  }
  const out = new Float64Array(n)
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()))
    const a = 2 * Math.PI * uniform()
    out[i] = r * Math.cos(a) * std
    if (i + 1 < n) out[i + 1] = r * Math.sin(a) * std
  }
  return out
}

const fnv = (s: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/** Element-by-element slice by index arithmetic. */
const sliceByIndex = (t: Tensor.Tensor, ranges: ReadonlyArray<[number, number]>): Array<number> => {
  const shape = ranges.map(([a, b]) => b - a)
  const out: Array<number> = []
  const strides = t.shape.map((_, i) => Tensor.sizeOf(t.shape.slice(i + 1)))
  const visit = (dim: number, offset: number) => {
    if (dim === shape.length) {
      out.push(t.data[offset] as number)
      return
    }
    const [a, b] = ranges[dim] as [number, number]
    for (let x = a; x < b; x++) visit(dim + 1, offset + x * (strides[dim] as number))
  }
  visit(0, 0)
  return out
}

const regionArb = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }).chain((shape) =>
  fc.record({
    shape: fc.constant(shape),
    ranges: fc.tuple(
      ...shape.map((d) => fc.tuple(fc.integer({ min: 0, max: d }), fc.integer({ min: 0, max: d })).map(([a, b]): [number, number] => [Math.min(a, b), Math.max(a, b)])),
    ),
    dtype: fc.constantFrom<DType.DType>("float32", "float64"),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    std: fc.constantFrom(0, 0.02, 1),
    name: fc.string({ maxLength: 12 }),
  }),
)

describe("initial parameters", () => {
  test("a shard made directly equals the shard of the whole sequential stream, bit for bit", () => {
    fc.assert(
      fc.property(regionArb, ({ shape, ranges, dtype, seed, std, name }) => {
        const spec: Params.ParamSpec = { name, shape, std, sharding: "replicated", layer: 0 }
        const n = Tensor.sizeOf(shape)
        const values = std === 0 ? new Float64Array(n).fill(1) : sequentialNormals((fnv(name) ^ Math.imul(seed, 0x9e3779b1)) >>> 0, n, std)
        const whole = Tensor.fromArray(values, shape, { dtype })
        expect(Array.from(ParamInit.initial(spec, seed, dtype).data)).toEqual(Array.from(whole.data))
        const shard = ParamInit.initialSlice(spec, seed, dtype, ranges)
        expect(shard.shape).toEqual(ranges.map(([a, b]) => b - a))
        expect(Array.from(shard.data)).toEqual(sliceByIndex(whole, ranges))
        expect(Array.from(Params.slice(whole, ranges).data)).toEqual(sliceByIndex(whole, ranges))
      }),
      { numRuns: 300 },
    )
  })

  test("slice and assemble are inverses over the shards of a split", () => {
    fc.assert(
      fc.property(regionArb, fc.integer({ min: 1, max: 3 }), ({ shape, dtype, seed }, parts) => {
        const whole = Tensor.fromArray(sequentialNormals(seed, Tensor.sizeOf(shape), 1), shape, { dtype })
        // Split the first dim into `parts` (empty pieces allowed) and the last into two.
        const cuts0 = Array.from({ length: parts + 1 }, (_, i) => Math.floor(((shape[0] as number) * i) / parts))
        const last = shape.length - 1
        const half = Math.floor((shape[last] as number) / 2)
        const shards = cuts0.slice(0, -1).flatMap((a, i) =>
          [
            [0, half],
            [half, shape[last] as number],
          ].map(([c, d]) => {
            const ranges = shape.map((dim): [number, number] => [0, dim])
            ranges[0] = [a, cuts0[i + 1] as number]
            ranges[last] = last === 0 ? [Math.max(a, 0), cuts0[i + 1] as number] : [c as number, d as number]
            return { slice: ranges, values: Params.slice(whole, ranges).data }
          }),
        )
        const covering = last === 0 ? shards.filter((_, i) => i % 2 === 0) : shards
        expect(Array.from(Params.assemble(shape, dtype, covering).data)).toEqual(Array.from(whole.data))
      }),
      { numRuns: 200 },
    )
  })
})
