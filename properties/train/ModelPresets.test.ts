// Model presets: each preset's unscaled shape is the documented one (paper.md's model table, the
// public Mixtral 8x7B config, the DeepSeek-V3-style choice, DeepSeek-V3's, DeepSeek-V2-Lite's, OLMoE's, GPT-OSS's and GLM-4.5-Air's configs); scaled by 64 (and by other powers of
// two) every preset passes ModelConfig.check on the default mapping (world 8: tp 2, cp 2, pp 2,
// ep 2) and keeps its experts, top-k, moeEvery and router options; scale 1 is the model itself.
import fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import * as PresetScale from "../../src/train/PresetScale.js"
import * as Params from "../../src/train/Params.js"

/** The documented shapes: [vocab, hidden, layers, heads, kvHeads, ffn, experts, topk, moeFfn, sharedExpertFfn]. */
const documented: Record<ModelPresets.Name, ReadonlyArray<number | undefined>> = {
  "mixtral-8x7b": [32000, 4096, 32, 32, 8, 14336, 8, 2, 14336, undefined],
  "mixtral-8x22b": [32000, 6144, 56, 48, 8, 16384, 8, 2, 16384, undefined],
  "mixtral-8x22b-g8t8": [32000, 6144, 56, 48, 8, 16384, 64, 8, 2048, undefined],
  "qwen2-57b-a14b": [151936, 3584, 28, 28, 4, 18944, 64, 8, 2560, 20480],
  "qwen3-30b-a3b": [151936, 2048, 48, 32, 4, 6144, 128, 8, 768, undefined],
  "qwen3-235b-a22b": [151936, 4096, 94, 64, 4, 12288, 128, 8, 1536, undefined],
  "llama3-8x70b": [128256, 8192, 80, 64, 8, 28672, 8, 2, 28672, undefined],
  "gpt-oss-20b": [201088, 2880, 24, 64, 8, 2880, 32, 4, 2880, undefined],
  "gpt-oss-120b": [201088, 2880, 36, 64, 8, 2880, 128, 4, 2880, undefined],
  "glm-4.5-air": [151552, 4096, 46, 96, 8, 10944, 128, 8, 1408, 1408],
  "deepseek-v2-lite": [102400, 2048, 27, 16, 16, 10944, 64, 6, 1408, 2816],
  "olmoe-1b-7b": [50304, 2048, 16, 16, 16, 1024, 64, 8, 1024, undefined],
  "deepseek-v3-style": [129280, 7168, 61, 128, 128, 18432, 256, 8, 2048, 2048],
  "deepseek-v3": [129280, 7168, 61, 128, 128, 18432, 256, 8, 2048, 2048],
}

const shapeOf = (m: ModelConfig.ModelConfig) => [m.vocab, m.hidden, m.layers, m.heads, m.kvHeads, m.ffn, m.experts, m.topk, m.moeFfn, m.sharedExpertFfn]

const defaultMapping = (): ParallelConfig.ParallelConfig => {
  const validated = ParallelConfig.validate({ world: 8, tp: 2, cp: 2, pp: 2, ep: 2, etp: 1 })
  if (Result.isFailure(validated)) throw new Error("the default mapping is invalid")
  return validated.success
}

const batch = { microBatch: 1, globalBatch: 8 }

describe("ModelPresets", () => {
  test("every preset's unscaled shape is the documented one, at the paper's seq 4096, MoE in every layer", () => {
    expect(ModelPresets.names).toEqual(Object.keys(documented))
    for (const name of ModelPresets.names) {
      const m = ModelPresets.model(name, 1)
      expect(shapeOf(m), name).toEqual(documented[name])
      expect(m.seq, name).toBe(4096)
      expect(m.moeEvery, name).toBe(1)
    }
  })

  test("the router options are those of the preset's model", () => {
    const qwen = ModelPresets.model("qwen2-57b-a14b", 1)
    expect(qwen.sharedExpertGate).toBe(true)
    expect(qwen.moe?.preSoftmax).toBe(true)
    expect(qwen.moe?.auxLosses).toEqual([{ type: "aux", coeff: 0.001 }])
    const deepseek = ModelPresets.model("deepseek-v3-style", 1)
    expect(deepseek.sharedExpertGate).toBeUndefined()
    expect(deepseek.moe).toMatchObject({ scoreFunction: "sigmoid", expertBias: true, numGroups: 8, groupTopk: 4, scalingFactor: 2.5 })
    for (const name of ["qwen3-30b-a3b", "qwen3-235b-a22b"] as const) {
      const qwen3 = ModelPresets.model(name, 1)
      expect([qwen3.headDim, qwen3.qkNorm, qwen3.moe?.preSoftmax, qwen3.ropeTheta, qwen3.normEps], name).toEqual([128, true, false, 1e6, 1e-6])
      expect(qwen3.moe?.auxLosses).toEqual([{ type: "aux", coeff: 0.001 }])
      // Scaled, the heads stay of a width of their own, at least 8 and even.
      expect(ModelPresets.model(name, 64).headDim).toBe(8)
      expect(ModelPresets.model(name, 4).headDim).toBe(32)
    }
    // DeepSeek-V3: the -style preset's MoE on its multi-latent attention (the public config's widths).
    const v3 = ModelPresets.model("deepseek-v3", 1)
    expect(v3.mla).toEqual({ qLoraRank: 1536, kvLoraRank: 512, qkHeadDim: 128, qkPosEmbHeadDim: 64, vHeadDim: 128 })
    expect(v3.moe).toEqual(deepseek.moe)
    expect(ModelPresets.model("deepseek-v3-style", 1).mla).toBeUndefined()
    // Scaled by 64: latents / 64 rounded up to 8, head widths even and at least 8 (the rotary part 4).
    expect(ModelPresets.model("deepseek-v3", 64).mla).toEqual({ qLoraRank: 24, kvLoraRank: 8, qkHeadDim: 8, qkPosEmbHeadDim: 4, vHeadDim: 8 })
    expect(ModelPresets.model("deepseek-v3", 4).mla).toEqual({ qLoraRank: 384, kvLoraRank: 128, qkHeadDim: 32, qkPosEmbHeadDim: 16, vHeadDim: 32 })
    expect(ModelPresets.model("mixtral-8x7b", 1).moe?.scoreFunction).toBe("softmax")
    expect(ModelPresets.model("mixtral-8x7b", 1).moe?.preSoftmax).toBe(false)
  })

  test("GPT-OSS: its attention (window on every other layer, sinks, YaRN unrounded), its experts' activation, biases and router", () => {
    for (const name of ["gpt-oss-20b", "gpt-oss-120b"] as const) {
      const m = ModelPresets.model(name, 1)
      expect([m.headDim, m.slidingWindow, m.windowAttnSkipFreq, m.softmaxType, m.ropeTheta, m.normEps, m.untieEmbeddings], name).toEqual([
        64,
        128,
        2,
        "learnable",
        150000,
        1e-5,
        true,
      ])
      expect(m.ropeScaling).toEqual({ factor: 32, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, mscale: 0, mscaleAllDim: 0, truncate: false })
      expect(m.glu).toEqual({ alpha: 1.702, offset: 1, limit: 7 })
      // The release's biases: q, k, v, o, the experts' and the router's.
      expect([m.qkvBias, m.linearBias, m.routerBias]).toEqual([true, true, true])
      expect(m.moe).toMatchObject({ scoreFunction: "softmax", preSoftmax: false, auxLosses: [{ type: "aux", coeff: 0.9 }] })
      // Scaled, the window shrinks with the sequence (at least 2 tokens).
      expect([ModelPresets.model(name, 64).slidingWindow, ModelPresets.model(name, 64).seq]).toEqual([2, 64])
      expect(ModelPresets.model(name, 4).slidingWindow).toBe(32)
    }
  })

  test("GLM-4.5-Air: its attention (q/k/v biases, RoPE on half of each 128-wide head), router and 106.85B parameters (the card's 106B)", () => {
    const m = ModelPresets.model("glm-4.5-air", 1)
    expect([m.headDim, m.qkvBias, m.rotaryPercent, m.qkNorm, m.denseFirst, m.ropeTheta, m.normEps, m.untieEmbeddings]).toEqual([128, true, 0.5, undefined, 1, 1e6, 1e-5, true])
    expect(m.moe).toMatchObject({ scoreFunction: "sigmoid", expertBias: true, auxLosses: [{ type: "seq_aux", coeff: 0.0001 }] })
    const count = Params.specs(m).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)
    expect(count).toBe(106_852_245_504)
    // Scaled, the heads stay 8 wide or more, so the rotary half is even.
    expect(ModelPresets.model("glm-4.5-air", 64).headDim).toBe(8)
  })

  test("DeepSeek-V2-Lite: multi-latent attention without a query latent, its softmax router and 15.71B parameters (the card's 15.7B)", () => {
    const m = ModelPresets.model("deepseek-v2-lite", 1)
    expect([m.mla, m.denseFirst, m.ropeTheta, m.normEps, m.untieEmbeddings]).toEqual([
      { qLoraRank: 0, kvLoraRank: 512, qkHeadDim: 128, qkPosEmbHeadDim: 64, vHeadDim: 128 },
      1,
      10000,
      1e-6,
      true,
    ])
    expect(m.moe).toMatchObject({ scoreFunction: "softmax", preSoftmax: true, expertBias: false, auxLosses: [{ type: "seq_aux", coeff: 0.001 }] })
    const count = Params.specs(m).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)
    expect(count).toBe(15_706_484_224)
  })

  test("OLMoE-1B-7B: q and k norms over the heads, its softmax router and 6.92B parameters (the card's 6.9B)", () => {
    const m = ModelPresets.model("olmoe-1b-7b", 1)
    expect([m.qkNorm, m.qkNormOverHeads, m.denseFirst, m.ropeTheta, m.normEps, m.untieEmbeddings]).toEqual([true, true, undefined, 10000, 1e-5, true])
    expect(m.moe).toMatchObject({ scoreFunction: "softmax", preSoftmax: true, auxLosses: [{ type: "aux", coeff: 0.01 }], zLossCoeff: 0.001 })
    const count = Params.specs(m).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)
    expect(count).toBe(6_919_161_856)
  })

  test("scale 1 is the model itself", () => {
    for (const name of ModelPresets.names) expect(PresetScale.scale(ModelPresets.presets[name].model, 1)).toBe(ModelPresets.presets[name].model)
  })

  test("scaled by 64 every preset fits the default mapping and keeps experts, top-k, moeEvery and its router", () => {
    const parallel = defaultMapping()
    for (const name of ModelPresets.names) {
      const full = ModelPresets.model(name, 1)
      const m = ModelPresets.model(name, 64)
      expect(() => ModelConfig.check(m, batch, parallel), name).not.toThrow()
      expect([m.experts, m.topk, m.moeEvery, m.sharedExpertGate], name).toEqual([full.experts, full.topk, full.moeEvery, full.sharedExpertGate])
      expect(m.moe, name).toEqual(full.moe)
      expect(m.hidden, name).toBe(Math.ceil(full.hidden / 64 / 8) * 8)
      expect(m.layers, name).toBe(2)
      expect(m.seq, name).toBe(64)
    }
  })

  test("scaled by any power of two from 2 to 1024, every preset fits the default mapping, shrinks, and keeps its GQA ratio where heads allow", () => {
    const parallel = defaultMapping()
    fc.assert(
      fc.property(fc.constantFrom(...ModelPresets.names), fc.integer({ min: 1, max: 10 }), (name, power) => {
        const factor = 2 ** power
        const full = ModelPresets.model(name, 1)
        const m = ModelPresets.model(name, factor)
        ModelConfig.check(m, batch, parallel)
        expect([m.experts, m.topk]).toEqual([full.experts, full.topk])
        for (const k of ["hidden", "ffn", "moeFfn", "vocab", "seq", "layers", "heads", "kvHeads"] as const) expect(m[k], k).toBeLessThanOrEqual(full[k] + (k === "layers" ? 1 : 0))
        expect(m.layers % 2).toBe(0)
        expect(m.hidden / m.heads).toBeGreaterThanOrEqual(8)
        if (full.heads === full.kvHeads) expect(m.kvHeads).toBe(m.heads)
      }),
      { numRuns: 60 },
    )
  })
})
