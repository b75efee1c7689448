// A backward pass hands back the storage of gradients it has consumed (tensor/BackwardPass,
// StorageRecycler): on random graphs that reuse tensors (add hands one gradient to both
// inputs, a reshape shares storage, a leaf keeps its first gradient as given, a second pass
// adds into it), the leaves' gradients over tensors in buffers of their own (past 64 KB) equal
// the same graph's over 4 elements, whose 16-byte slab views a pass hands back only piecemeal: the large leaves repeat the small
// ones' values, so every element's gradient is the small graph's at its index mod 4 (small
// integers keep every sum exact). The suites run the recycler in checking mode, where a storage
// handed back is detached: a gradient the pass still held would read as empty and fail here.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { add, mul, scale, sub } from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import { reshape } from "../../src/tensor/ops/Shape.js"
import * as GradAccumulator from "../../src/tensor/GradAccumulator.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

type Step = { readonly op: 0 | 1 | 2 | 3 | 4; readonly i: number; readonly j: number }

const stepArb = fc.record({ op: fc.constantFrom<Step["op"]>(0, 1, 2, 3, 4), i: fc.nat(), j: fc.nat() })
const caseArb = fc.record({
  leaves: fc.array(fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }),
})

/** Elements of a large tensor: the recycler's smallest buffer of its own, a multiple of 4. */
const large = 4 * Math.ceil(StorageRecycler.minBytes / 16)

const evaluate = (leaves: ReadonlyArray<Tensor.Tensor>, steps: ReadonlyArray<Step>): Tensor.Tensor => {
  const n = leaves[0]?.size ?? 0
  const nodes: Array<Tensor.Tensor> = [...leaves]
  for (const s of steps) {
    const u = nodes[s.i % nodes.length] as Tensor.Tensor
    const v = nodes[s.j % nodes.length] as Tensor.Tensor
    nodes.push(s.op === 0 ? add(u, v) : s.op === 1 ? mul(u, scale(v, 0.5)) : s.op === 2 ? sub(u, v) : s.op === 3 ? reshape(reshape(u, [n / 4, 4]), [n]) : add(u, u))
  }
  return Reduce.sumAll(nodes.filter((_, k) => k % 2 === 1 || k === nodes.length - 1).reduce((acc, t) => add(acc, t)))
}

/** The leaves' gradients after two backward passes over fresh graphs (the second adds into the first). */
const gradients = (leaves: ReadonlyArray<ReadonlyArray<number>>, steps: ReadonlyArray<Step>, size: number): Array<Float32Array> => {
  const tape = Tape.make()
  const params = leaves.map((v) =>
    tape.parameter(
      Tensor.fromArray(
        Array.from({ length: size }, (_, k) => v[k % 4] as number),
        [size],
        { dtype: "float32" },
      ),
    ),
  )
  tape.backward(evaluate(params, steps))
  tape.backward(evaluate(params, steps))
  return params.map((p) => Float32Array.from(p.grad?.data ?? new Float32Array(size)))
}

describe("a backward pass hands back the gradients it consumed", () => {
  test("large leaves' gradients equal the small graph's, element by element, after two passes; storage was handed back", () => {
    const before = StorageRecycler.stats().recycled
    fc.assert(
      fc.property(caseArb, ({ leaves, steps }) => {
        const small = gradients(leaves, steps, 4)
        const big = gradients(leaves, steps, large)
        big.forEach((g, a) => {
          expect(g.length).toBe(large)
          const want = small[a] as Float32Array
          for (let k = 0; k < large; k++) if (g[k] !== want[k % 4]) expect([a, k, g[k]]).toEqual([a, k, want[k % 4]])
        })
      }),
      { numRuns: 60 },
    )
    // Graphs with a sub or a product consume fresh gradients: some storage came back.
    expect(StorageRecycler.stats().recycled).toBeGreaterThan(before)
  }, 120_000)

  test("a thin weight gradient that waits on its accumulator keeps the consumed gradient it reads: the settled sum is x^T c", () => {
    // y = x W, z = y * c, loss = sum(z): W's gradient x^T (ones * c) is deferred (16 rows against
    // W's [256, 16384]) and reads the gradient of y (1 MiB, made by mul's rule, consumed by the
    // product's rule) when the accumulator settles, after the pass.
    const [k, m, n] = [16, 256, 16384]
    const xs = Float32Array.from({ length: k * m }, (_, i) => (i % 7) - 3)
    const cs = Float32Array.from({ length: k * n }, (_, i) => (i % 5) - 2)
    const acc = new Float32Array(m * n)
    GradAccumulator.clear(acc)
    const before = StorageRecycler.stats().recycled
    const tape = Tape.make()
    const w = tape.parameter(Tensor.fromStorage(new Float32Array(m * n).fill(0.5), [m, n]), acc)
    expect(GradAccumulator.defers(acc, m, n, k)).toBe(true)
    tape.backward(Reduce.sumAll(mul(matmul(Tensor.fromStorage(xs, [k, m]), w), Tensor.fromStorage(cs, [k, n]))))
    const afterPass = StorageRecycler.stats().recycled
    GradAccumulator.settle(acc)
    // The kept gradient, offered back during the pass, goes back once the product let go of it.
    expect(StorageRecycler.stats().recycled).toBeGreaterThan(afterPass)
    expect(afterPass).toBeGreaterThanOrEqual(before)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j += 97) {
        let want = 0
        for (let r = 0; r < k; r++) want += (xs[r * m + i] as number) * (cs[r * n + j] as number)
        if (acc[i * n + j] !== want) expect([i, j, acc[i * n + j]]).toEqual([i, j, want])
      }
  }, 60_000)
})
