// RoPE's keys in a Hugging Face config.json: what pleat writes for any YaRN (or Llama 3's or linear scaling)
// reads back as the same from either key style (transformers 5's rope_parameters, the legacy rope_scaling),
// plain RoPE as none; transformers' defaults fill what a config leaves out (beta_fast 32,
// beta_slow 1, an absent mscale as 0; truncate false, GPT-OSS's, read and written); what pleat
// cannot compute is refused naming the key.
// (Against transformers itself: properties/cli/ExportCommand.test.ts and ImportCommand.test.ts.)
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as HfRope from "../../src/train/HfRope.js"

type Keys = typeof HfRope.RopeKeys.Type

const refuse = (reason: string, fix: string) => ConfigError.make("--model-dir", "dir", reason, fix)

const yarnArb = fc
  .record({
    factor: fc.double({ min: 1, max: 64, noNaN: true }),
    originalMaxPositions: fc.integer({ min: 1, max: 1 << 20 }),
    betaFast: fc.double({ min: 1, max: 64, noNaN: true }),
    betaSlow: fc.double({ min: 0.25, max: 4, noNaN: true }),
    mscale: fc.constantFrom(0, 1, 0.5),
    mscaleAllDim: fc.constantFrom(0, 1, 0.7),
  })
  .chain((y) => fc.constantFrom(y, { ...y, truncate: false }))

/** Llama 3's scaling: low below high frequency factor. */
const llama3Arb = fc
  .record({
    factor: fc.double({ min: 1, max: 64, noNaN: true }),
    lowFreqFactor: fc.double({ min: 0.25, max: 4, noNaN: true }),
    spread: fc.double({ min: 0.1, max: 8, noNaN: true }),
    originalMaxPositions: fc.integer({ min: 1, max: 1 << 20 }),
  })
  .map(({ spread, ...l }) => ({ type: "llama3" as const, ...l, highFreqFactor: l.lowFreqFactor + spread }))

describe("RoPE's config keys", () => {
  test("YaRN written reads back the same from either key style; plain RoPE as none", () => {
    fc.assert(
      fc.property(yarnArb, fc.constantFrom(10000, 1e6), (y, theta) => {
        const keys = HfRope.keysOf(theta, y) as { rope_theta: number; rope_parameters: Keys; rope_scaling: Keys }
        expect(keys.rope_theta).toBe(theta)
        expect(keys.rope_parameters.rope_theta).toBe(theta)
        expect(HfRope.scalingOf({ rope_parameters: keys.rope_parameters }, refuse)).toEqual(y)
        expect(HfRope.scalingOf({ rope_scaling: keys.rope_scaling }, refuse)).toEqual(y)
        const plain = HfRope.keysOf(theta, undefined) as { rope_parameters: Keys; rope_scaling: null }
        expect(HfRope.scalingOf(plain, refuse)).toBeUndefined()
      }),
    )
  })

  test("Llama 3's scaling written reads back the same from either key style", () => {
    fc.assert(
      fc.property(llama3Arb, (l) => {
        const keys = HfRope.keysOf(500000, l) as { rope_parameters: Keys; rope_scaling: Keys }
        expect(keys.rope_parameters.rope_type).toBe("llama3")
        expect(HfRope.scalingOf({ rope_parameters: keys.rope_parameters }, refuse)).toEqual(l)
        expect(HfRope.scalingOf({ rope_scaling: keys.rope_scaling }, refuse)).toEqual(l)
      }),
    )
  })

  test("linear scaling written reads back the same from either key style; a factor not above 0 refused", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.1, max: 64, noNaN: true }), (factor) => {
        const l = { type: "linear" as const, factor }
        const keys = HfRope.keysOf(10000, l) as { rope_parameters: Keys; rope_scaling: Keys }
        expect(keys.rope_parameters.rope_type).toBe("linear")
        expect(HfRope.scalingOf({ rope_parameters: keys.rope_parameters }, refuse)).toEqual(l)
        expect(HfRope.scalingOf({ rope_scaling: keys.rope_scaling }, refuse)).toEqual(l)
      }),
    )
    expect(() => HfRope.scalingOf({ rope_scaling: { type: "linear", factor: 0 } }, refuse)).toThrow("gives linear RoPE scaling a factor of 0")
  })

  test("transformers' defaults fill what a config leaves out", () => {
    expect(HfRope.scalingOf({ rope_scaling: { type: "yarn", factor: 40, original_max_position_embeddings: 4096, mscale_all_dim: 1 } }, refuse)).toEqual({
      factor: 40,
      originalMaxPositions: 4096,
      betaFast: 32,
      betaSlow: 1,
      mscale: 0,
      mscaleAllDim: 1,
    })
  })

  test("what pleat cannot compute is refused naming the key", () => {
    const cases: ReadonlyArray<[Keys, string]> = [
      [{ rope_type: "longrope", factor: 8 }, "scales RoPE with rope_type longrope"],
      [{ rope_type: "llama3", factor: 8 }, "gives Llama 3's RoPE scaling low_freq_factor undefined"],
      [{ rope_type: "yarn", factor: 4 }, "gives YaRN no original_max_position_embeddings (undefined)"],
      [{ rope_type: "yarn", factor: 0.5, original_max_position_embeddings: 8 }, "gives YaRN a factor of 0.5"],
      [{ rope_type: "yarn", factor: 4, original_max_position_embeddings: 8, attention_factor: 1 }, "gives YaRN an attention_factor of its own (1)"],
      [{ rope_type: "yarn", factor: 4, original_max_position_embeddings: 8, partial_rotary_factor: 0.5 }, "rotates a part of each head (partial_rotary_factor 0.5)"],
    ]
    for (const [keys, reason] of cases) expect(() => HfRope.scalingOf({ rope_parameters: keys }, refuse)).toThrow(reason)
  })
})
