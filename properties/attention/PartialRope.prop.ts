// Partial RoPE (--rotary-percent, transformers' partial_rotary_factor): RoPE turns the first R of
// each head's D dimensions, over R's frequencies, and the rest pass. Checked against heads of
// width R: where q's and k's other D - R columns are zero they add nothing to q . k, so with the
// same softmax scale, values and output projection the layer is exactly the narrower heads' full
// RoPE attention; and q and k in the other columns alone give scores no position moves (the layer
// is the same with every token at position 0).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as SelfAttention from "../../src/attention/SelfAttention.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const one = Group.make("one", [0])

/** The layer's output on one rank. */
const attend = async (x: Tensor.Tensor, w: SelfAttention.AttentionWeights, c: Omit<SelfAttention.AttentionConfig, "tp" | "cp" | "sequenceParallel">) => {
  const [out] = await Job.runPromise({ world: 1 }, () => SelfAttention.forward(x, w, { ...c, tp: one, cp: one, sequenceParallel: false }, 0))
  return Tensor.toArray(out as Tensor.Tensor)
}

/** [H, heads * D] with each head's columns from `columns(head)`: a [H, n] block per head, zeros to D. */
const perHead = (hidden: number, heads: number, d: number, n: number, block: (head: number) => Tensor.Tensor): Tensor.Tensor => {
  const out = new Float64Array(hidden * heads * d)
  for (let h = 0; h < heads; h++) {
    const b = block(h).data
    for (let row = 0; row < hidden; row++) for (let j = 0; j < n; j++) out[row * heads * d + h * d + j] = b[row * n + j] as number
  }
  return Tensor.fromArray(Array.from(out), [hidden, heads * d], { dtype: "float64" })
}

describe("partial RoPE", () => {
  test("with the unrotated q/k columns zero it is the narrower heads' full RoPE; they add a score positions do not move", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(2, 4), fc.constantFrom(1, 2, 3), fc.constantFrom(1, 2), fc.integer({ min: 1, max: 10_000 }), async (r, extra, heads, seed) => {
        const d = r + 2 * extra
        const [hidden, seq, batch] = [6, 5, 2]
        const x = uniform([batch * seq, hidden], seed)
        const qr = Array.from({ length: heads }, (_, h) => uniform([hidden, r], seed + 10 + h))
        const kr = Array.from({ length: heads }, (_, h) => uniform([hidden, r], seed + 20 + h))
        const wv = uniform([hidden, heads * r], seed + 3)
        const wo = uniform([heads * r, hidden], seed + 4)
        const scale = 0.37
        const narrow = await attend(
          x,
          { wq: perHead(hidden, heads, r, r, (h) => qr[h] as Tensor.Tensor), wk: perHead(hidden, heads, r, r, (h) => kr[h] as Tensor.Tensor), wv, wo },
          {
            batch,
            seq,
            heads,
            kvHeads: heads,
            headDim: r,
            softmaxScale: scale,
          },
        )
        // The wide heads' values and outputs: the narrow ones' in the first R, zeros after.
        const wideV = perHead(hidden, heads, d, r, (h) =>
          Tensor.fromArray(
            Array.from({ length: hidden * r }, (_, i) => wv.data[Math.floor(i / r) * heads * r + h * r + (i % r)] as number),
            [hidden, r],
            { dtype: "float64" },
          ),
        )
        const wideO = Tensor.fromArray(
          Array.from({ length: heads * d * hidden }, (_, i) => {
            const [row, col] = [Math.floor(i / hidden), i % hidden]
            const [h, j] = [Math.floor(row / d), row % d]
            return j < r ? (wo.data[(h * r + j) * hidden + col] as number) : 0
          }),
          [heads * d, hidden],
          { dtype: "float64" },
        )
        const config = { batch, seq, heads, kvHeads: heads, headDim: d, softmaxScale: scale, rotaryDim: r }
        const wide = await attend(
          x,
          { wq: perHead(hidden, heads, d, r, (h) => qr[h] as Tensor.Tensor), wk: perHead(hidden, heads, d, r, (h) => kr[h] as Tensor.Tensor), wv: wideV, wo: wideO },
          config,
        )
        wide.forEach((v, i) => expect(v).toBeCloseTo(narrow[i] as number, 12))
        // q and k only in the unrotated columns: a score no position moves (all at position 0 alike).
        const passOnly = (s: number) => (h: number) => uniform([hidden, d], seed + s + h)
        const masked = (t: Tensor.Tensor) =>
          Tensor.fromArray(
            Array.from(t.data, (v, i) => ((i % (heads * d)) % d < r ? 0 : (v as number))),
            t.shape,
            { dtype: "float64" },
          )
        const w = { wq: masked(perHead(hidden, heads, d, d, passOnly(30))), wk: masked(perHead(hidden, heads, d, d, passOnly(40))), wv: wideV, wo: wideO }
        const at = await attend(x, w, config)
        const still = await attend(x, w, { ...config, documents: { positions: new Int32Array(batch * seq) } })
        still.forEach((v, i) => expect(v).toBeCloseTo(at[i] as number, 12))
      }),
      { numRuns: 20 },
    )
  }, 60_000)
})
