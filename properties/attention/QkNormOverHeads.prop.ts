// q/k norms over the heads (--qk-norm --qk-norm-over-heads, OLMoE's and OLMo 2's): the rows'
// squares summed (over tp, in parts) then each part scaled by inverseRms is RMSNorm over the whole
// row (the rmsNorm op, independently), forward and backward (inverseRms against finite
// differences); in the layer, on one rank, it is RMSNorm of each token's whole q and k before RoPE,
// which per-head norms with the same weights are not (it fails when the flag is ignored).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as SelfAttention from "../../src/attention/SelfAttention.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import { add, mul } from "../../src/tensor/ops/Elementwise.js"
import { inverseRms, rmsNorm } from "../../src/tensor/ops/Norm.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"

const one = Group.make("one", [0])

describe("q/k norms over the heads", () => {
  test("squares summed in parts, each part scaled by inverseRms: RMSNorm over the whole row, forward and backward", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(1e-6, 1e-2),
        fc.integer({ min: 1, max: 1e6 }),
        (rows, parts, width, eps, seed) => {
          const cols = parts * width
          const x = uniform([rows, cols], seed, 0.25, 1)
          const w = uniform([cols], seed + 1, -2, 2)
          const split = ([t, weight]: ReadonlyArray<Tensor.Tensor>) => {
            const ts = Shape.split(t as Tensor.Tensor, Array<number>(parts).fill(width), 1)
            const ws = Shape.split(weight as Tensor.Tensor, Array<number>(parts).fill(width), 0)
            // Each part's sums of squares, added as an all-reduce adds them; each part scaled by the whole row's.
            const squares = ts.map((p) => Reduce.sum(mul(p, p), 1, true)).reduce((a, b) => add(a, b))
            const r = inverseRms(squares, cols, eps)
            return Shape.concat(
              ts.map((p, i) => mul(mul(p, r), ws[i] as Tensor.Tensor)),
              1,
            )
          }
          const whole = Tensor.toArray(rmsNorm(x, w, eps))
          const parted = Tensor.toArray(split([x, w]))
          parted.forEach((v, i) => expect(v).toBeCloseTo(whole[i] as number, 12))
          const check = gradcheck(split, [x, w])
          expect(check.maxRelativeError, check.worst).toBeLessThan(1e-6)
        },
      ),
      { numRuns: 60 },
    )
  })

  test("in the layer: with one head it is that head's norm; with more it is not each head's", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(2, 4), fc.integer({ min: 1, max: 1e6 }), async (d, seed) => {
        const [hidden, seq, batch, eps] = [6, 5, 2, 1e-6]
        const x = uniform([batch * seq, hidden], seed)
        const layer = async (heads: number, norm: SelfAttention.AttentionWeights["norm"]) => {
          const w = (s: number, shape: ReadonlyArray<number>) => uniform(shape, seed + s)
          const weights = { wq: w(1, [hidden, heads * d]), wk: w(2, [hidden, heads * d]), wv: w(3, [hidden, heads * d]), wo: w(4, [heads * d, hidden]), norm }
          const config = { batch, seq, heads, kvHeads: heads, headDim: d, tp: one, cp: one, sequenceParallel: false }
          const [out] = await Job.runPromise({ world: 1 }, () => SelfAttention.forward(x, weights, config, 0))
          return Tensor.toArray(out as Tensor.Tensor)
        }
        const [qn, kn] = [uniform([d], seed + 5, 0.5, 1.5), uniform([d], seed + 6, 0.5, 1.5)]
        const over = await layer(1, { q: qn, k: kn, eps, overHeads: true })
        const each = await layer(1, { q: qn, k: kn, eps })
        over.forEach((v, i) => expect(v).toBeCloseTo(each[i] as number, 12))
        // Two heads: the weights repeated per head make the per-head norm's; the whole q's RMS is another.
        const twice = (t: Tensor.Tensor) => Shape.concat([t, t], 0)
        const overTwo = await layer(2, { q: twice(qn), k: twice(kn), eps, overHeads: true })
        const eachTwo = await layer(2, { q: qn, k: kn, eps })
        expect(overTwo.some((v, i) => Math.abs(v - (eachTwo[i] as number)) > 1e-9)).toBe(true)
      }),
      { numRuns: 10 },
    )
  })
})
