// NoPE layers (--no-rope-freq N, Megatron's; Llama 4's): a layer without RoPE turns neither q nor
// k, so its output does not depend on RoPE's base (a RoPE layer's does); the layers numbered N,
// 2N, ... (from 1) are those, MTP layers keep RoPE; Megatron's list form names the same layers.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as SelfAttention from "../../src/attention/SelfAttention.js"
import * as LayerPattern from "../../src/cli/LayerPattern.js"
import * as Group from "../../src/comm/Group.js"
import * as ModelContext from "../../src/model/ModelContext.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const one = Group.make("one", [0])

describe("layers without RoPE", () => {
  test("a NoPE layer's output does not move with RoPE's base; a RoPE layer's does", async () => {
    await fc.assert(
      // Heads of 4 or more: a head of 2 has one frequency, 1, whatever the base.
      fc.asyncProperty(fc.constantFrom(4, 8), fc.integer({ min: 1, max: 1e6 }), async (d, seed) => {
        const [hidden, heads, seq, batch] = [6, 2, 5, 2]
        const x = uniform([batch * seq, hidden], seed)
        const w = {
          wq: uniform([hidden, heads * d], seed + 1),
          wk: uniform([hidden, heads * d], seed + 2),
          wv: uniform([hidden, heads * d], seed + 3),
          wo: uniform([heads * d, hidden], seed + 4),
        }
        const layer = async (noRope: boolean, ropeTheta: number) => {
          const config = { batch, seq, heads, kvHeads: heads, headDim: d, tp: one, cp: one, sequenceParallel: false, noRope, ropeTheta }
          const [out] = await Job.runPromise({ world: 1 }, () => SelfAttention.forward(x, w, config, 0))
          return Tensor.toArray(out as Tensor.Tensor)
        }
        expect(await layer(true, 10)).toEqual(await layer(true, 1e6))
        const [near, far] = [await layer(false, 10), await layer(false, 1e6)]
        expect(near.some((v, i) => Math.abs(v - (far[i] as number)) > 1e-9)).toBe(true)
      }),
      { numRuns: 10 },
    )
  })

  test("the layers numbered N, 2N, ... skip RoPE, MTP layers keep it; Megatron's list names the same layers", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), (n, groups) => {
        const layers = n * groups
        const skipped = Array.from({ length: layers + 2 }, (_, l) => !ModelContext.usesRope({ noRopeFreq: n, layers }, l))
        expect(skipped.slice(0, layers)).toEqual(Array.from({ length: layers }, (_, l) => (l + 1) % n === 0))
        expect(skipped.slice(layers)).toEqual([false, false])
        expect(LayerPattern.noRopeOf("no-rope-freq", `([0]*${n - 1}+[1])*${groups}`, layers)).toBe(n)
        expect(LayerPattern.noRopeOf("no-rope-freq", String(n), layers)).toBe(n)
      }),
    )
  })
})
