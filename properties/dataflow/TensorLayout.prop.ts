// Run-time layouts: the local shape divides each dim by its shards; the collective rewrites
// undo each other (scatter then gather, partial then reduce); formatting names what differs.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const sizes = fc.constantFrom(1, 2, 4)
const hidden = (cp: number, tp: number, sp: boolean) =>
  TensorLayout.make([TensorLayout.dim("tokens", 64, [{ axis: "cp", size: cp }, ...(sp ? [{ axis: "tp" as const, size: tp }] : [])]), TensorLayout.dim("hidden", 16)])

describe("tensor layouts", () => {
  test("worked example: cp 2, tp 2, sequence parallel", () => {
    const l = hidden(2, 2, true)
    expect(TensorLayout.format(l)).toBe("[tokens 64/cp2/tp2, hidden 16] sequence-parallel")
    expect(TensorLayout.localShape(l)).toEqual([16, 16])
    expect(TensorLayout.format(hidden(2, 2, false))).toBe("[tokens 64/cp2, hidden 16]")
    expect(TensorLayout.format(hidden(1, 1, true))).toBe("[tokens 64, hidden 16]")
    expect(TensorLayout.misfit(l, Tensor.zeros([32, 16]))).toBe("a tensor [32, 16], where [tokens 64/cp2/tp2, hidden 16] sequence-parallel has local shape [16, 16]")
    expect(TensorLayout.misfit(l, Tensor.zeros([16, 16]))).toBeUndefined()
  })

  test("local shape times the shard sizes is the global shape; scatter and gather, partial and reduce undo each other", () => {
    fc.assert(
      fc.property(sizes, sizes, fc.boolean(), (cp, tp, sp) => {
        const l = hidden(cp, tp, sp)
        expect(TensorLayout.localShape(l)[0]).toBe(64 / cp / (sp ? tp : 1))
        expect(TensorLayout.isSequenceParallel(l)).toBe(sp && tp > 1)
        const shard = { axis: "tp" as const, size: tp }
        const partial = TensorLayout.partialOver(TensorLayout.gather(l, "tp"), shard)
        expect(TensorLayout.format(partial)).toContain(tp > 1 ? "partial over tp" : "]")
        expect(TensorLayout.equals(TensorLayout.reduce(partial, "tp"), hidden(cp, tp, false))).toBe(true)
        expect(TensorLayout.equals(TensorLayout.scatter(partial, shard), hidden(cp, tp, true))).toBe(true)
        expect(TensorLayout.equals(TensorLayout.gather(hidden(cp, tp, true), "tp"), hidden(cp, tp, false))).toBe(true)
        expect(TensorLayout.equals(TensorLayout.inOrder(l, "permuted"), l)).toBe(false)
      }),
    )
  })

  test("equals is format's equality: two layouts are equal exactly when they print alike", () => {
    const shardArb = fc.record({ axis: fc.constantFrom<"tp" | "cp" | "dp" | "ep">("tp", "cp", "dp", "ep"), size: fc.integer({ min: 1, max: 4 }) })
    const dimArb = fc.record({
      name: fc.constantFrom("rows", "hidden", "experts"),
      size: fc.integer({ min: 1, max: 8 }),
      over: fc.array(shardArb, { maxLength: 2 }),
      ragged: fc.boolean(),
    })
    const layoutArb = fc.record({
      dims: fc.array(dimArb, { minLength: 1, maxLength: 3 }),
      partial: fc.array(shardArb, { maxLength: 2 }),
      tokens: fc.constantFrom<"sequence" | "permuted">("sequence", "permuted"),
    })
    const build = (x: typeof layoutArb extends fc.Arbitrary<infer T> ? T : never) =>
      TensorLayout.make(
        x.dims.map((d) => (d.ragged ? TensorLayout.ragged(d.name, d.size, d.over) : TensorLayout.dim(d.name, d.size, d.over))),
        { partial: x.partial, tokens: x.tokens },
      )
    // Pairs drawn apart and pairs that share most of their draw (so that equal ones occur).
    fc.assert(
      fc.property(layoutArb, layoutArb, fc.boolean(), (x, y, near) => {
        const a = build(x)
        const b = build(near ? { ...x, tokens: y.tokens, dims: x.dims.map((d, i) => (i === 0 ? (y.dims[0] ?? d) : d)) } : y)
        expect(TensorLayout.equals(a, b)).toBe(TensorLayout.format(a) === TensorLayout.format(b))
        expect(TensorLayout.equals(a, build(x))).toBe(true)
      }),
      { numRuns: 400 },
    )
  })
})
