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
})
