// --window-attn-skip-freq N (Megatron's): with a sliding window, the layers numbered N, 2N, ...
// (counting from 1) attend to their whole causal context. Read off the model's rows (float64, one
// rank): with one layer's attention silenced (its output projection zero), the other layer alone
// decides the rows, so a two-layer model with N = 2 equals every layer windowed when its second
// layer is silent, and no layer windowed when its first is, bit for bit, and differs from the
// other one. N = 1 is no window at all and N above the layers the window everywhere, bit for bit.
// Multi-token prediction layers attend as the last layer does (ModelContext.windowOf).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ModelContext from "../../src/model/ModelContext.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Job from "../../src/runtime/Job.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import { contextOf, maxDifference, paramsOf, rowsOf } from "./oneRankRows.js"

const base: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 2, hidden: 8, heads: 2, kvHeads: 1, ffn: 8, moeFfn: 4, experts: 4, topk: 2, seq: 10, vocab: 11 }
const latent: ModelConfig.ModelConfig = { ...base, kvHeads: 2, mla: { qLoraRank: 0, kvLoraRank: 8, qkHeadDim: 4, qkPosEmbHeadDim: 2, vHeadDim: 4 } }

const idsArb = fc.array(fc.integer({ min: 0, max: 10 }), { minLength: base.seq, maxLength: base.seq }).map((a) => Int32Array.from(a))

/** `param` with layer `layer`'s attention output projection zero: the layer's attention adds nothing. */
const silenced = (param: (name: string) => Tensor.Tensor, layer: number) => (name: string) => {
  const held = param(name)
  return name === `layers.${layer}.wo` ? Tensor.zeros(held.shape, { dtype: held.dtype }) : held
}

describe("full-attention layers among sliding-window ones (--window-attn-skip-freq)", () => {
  test("which layers keep the window: layer numbers N, 2N, ... counting from 1 do not; MTP layers as the last", () => {
    const s = { slidingWindow: 4, layers: 6 }
    const windowed = (skip: number | undefined) => Array.from({ length: 8 }, (_, l) => ModelContext.windowOf({ ...s, windowAttnSkipFreq: skip }, l) !== undefined)
    expect(windowed(2)).toEqual([true, false, true, false, true, false, false, false])
    expect(windowed(3)).toEqual([true, true, false, true, true, false, false, false])
    expect(windowed(4)).toEqual([true, true, true, false, true, true, true, true])
    expect(windowed(1)).toEqual(new Array(8).fill(false))
    expect(windowed(undefined)).toEqual(new Array(8).fill(true))
    expect(ModelContext.windowOf({ layers: 6, windowAttnSkipFreq: 2 }, 1)).toBeUndefined()
  })

  test.each([
    ["grouped-query attention", base],
    ["multi-latent attention", latent],
  ])(
    "%s: N = 2 over two layers is the window in the first layer and none in the second",
    async (_, model) => {
      const param = paramsOf(model)
      await fc.assert(
        fc.asyncProperty(idsArb, fc.integer({ min: 1, max: base.seq - 2 }), async (ids, window) => {
          const windowed = { ...model, slidingWindow: window }
          const skipping = { ...windowed, windowAttnSkipFreq: 2 }
          const rows = (m: ModelConfig.ModelConfig, p: (name: string) => Tensor.Tensor) => rowsOf(contextOf(m, p), ids)
          const [secondSilent, firstSilent, plain, everywhere, one, beyond] = await Job.runPromise({ world: 1 }, () =>
            Effect.all([
              Effect.all([rows(skipping, silenced(param, 1)), rows(windowed, silenced(param, 1)), rows(model, silenced(param, 1))]),
              Effect.all([rows(skipping, silenced(param, 0)), rows(model, silenced(param, 0)), rows(windowed, silenced(param, 0))]),
              rows(model, param),
              rows(windowed, param),
              rows({ ...windowed, windowAttnSkipFreq: 1 }, param),
              rows({ ...windowed, windowAttnSkipFreq: 3 }, param),
            ]),
          ).then((r) => r[0] as [Array<Array<number>>, Array<Array<number>>, Array<number>, Array<number>, Array<number>, Array<number>])
          // Second layer silent: the first (windowed) decides; first silent: the second (full) does.
          expect(secondSilent[0]).toEqual(secondSilent[1])
          expect(maxDifference(secondSilent[0] as Array<number>, secondSilent[2] as Array<number>)).toBeGreaterThan(1e-9)
          expect(firstSilent[0]).toEqual(firstSilent[1])
          expect(maxDifference(firstSilent[0] as Array<number>, firstSilent[2] as Array<number>)).toBeGreaterThan(1e-9)
          expect(one).toEqual(plain)
          expect(beyond).toEqual(everywhere)
        }),
        { numRuns: 8 },
      )
    },
    60_000,
  )
})
