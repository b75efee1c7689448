// --init-method-std F (InitMethod.withStd, Megatron's init_method_normal and
// scaled_init_method_normal): every weight drawn from N(0, F), the embedding, router and output
// layer included; exactly the attention's output projections and the dense, expert and shared
// MLPs' down projections (every layer's, the multi-token prediction layers' too) from
// N(0, F / sqrt(2 L)); norms stay ones and biases zeros. The values are pleat's own draws scaled,
// element for element, and their spread is the one asked for.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as InitMethod from "../../src/train/InitMethod.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"

const modelArb = fc
  .record({
    layers: fc.integer({ min: 1, max: 4 }),
    moeEvery: fc.integer({ min: 1, max: 2 }),
    shared: fc.boolean(),
    latent: fc.boolean(),
    mtp: fc.boolean(),
    untied: fc.boolean(),
    qkvBias: fc.boolean(),
  })
  .map(
    (o): ModelConfig.ModelConfig => ({
      ...ModelConfig.small,
      layers: o.layers,
      moeEvery: o.moeEvery,
      hidden: 16,
      heads: 2,
      kvHeads: o.latent ? 2 : 1,
      ffn: 12,
      moeFfn: 8,
      vocab: 24,
      seq: 8,
      ...(o.shared ? { sharedExpertFfn: 8, sharedExpertGate: true } : {}),
      ...(o.latent ? { mla: { qLoraRank: 4, kvLoraRank: 8, qkHeadDim: 4, qkPosEmbHeadDim: 2, vHeadDim: 4 } } : { qkvBias: o.qkvBias }),
      ...(o.mtp ? { mtpLayers: 1 } : {}),
      untieEmbeddings: o.untied,
    }),
  )

/** The down projections into the residual stream, by the name's last part. */
const intoResidual = (name: string) => /\.(wo|wDown|experts\.wDown|shared\.wDown)$/.test(name)

const initialValues = (specs: ReadonlyArray<Params.ParamSpec>, seed: number) => {
  const one = ParallelConfig.make({ world: 1 })
  const params = RankParams.make([...specs], () => true, Folding.place(Folding.make(one), 0), one.sizes, seed, "float64")
  return (name: string) => (params.get(name) as RankParams.Held).value.data
}

describe("Megatron's initialisation (--init-method-std)", () => {
  test("F for every weight, F / sqrt(2 L) for the projections into the residual stream; norms and biases as before", () => {
    fc.assert(
      fc.property(modelArb, fc.double({ min: 1e-4, max: 0.1, noNaN: true }), (model, std) => {
        const before = Params.specs(model)
        const after = InitMethod.withStd(before, std, model.layers)
        expect(after.map((s) => s.name)).toEqual(before.map((s) => s.name))
        after.forEach((spec, i) => {
          const was = before[i] as Params.ParamSpec
          if (was.std === 0 || was.zero === true) expect(spec).toBe(was)
          else expect(spec.std).toBe(intoResidual(spec.name) ? std / Math.sqrt(2 * model.layers) : std)
        })
        expect(InitMethod.withStd(before, undefined, model.layers)).toBe(before)
      }),
      { numRuns: 60 },
    )
  })

  test("the values are pleat's draws scaled, and spread as asked", () => {
    const model: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 2, hidden: 64, heads: 4, kvHeads: 2, ffn: 128, moeFfn: 64, experts: 4, vocab: 256, seq: 8 }
    const std = 0.006
    const before = Params.specs(model)
    const after = InitMethod.withStd(before, std, model.layers)
    const [plain, megatron] = [initialValues(before, 7), initialValues(after, 7)]
    after.forEach((spec, i) => {
      const was = before[i] as Params.ParamSpec
      const [x, y] = [plain(spec.name), megatron(spec.name)]
      if (was.std === 0 || was.zero === true) {
        expect(y).toEqual(x)
        return
      }
      for (let j = 0; j < x.length; j++)
        expect(Math.abs((y[j] as number) * was.std - (x[j] as number) * spec.std)).toBeLessThanOrEqual(1e-15 * Math.abs((x[j] as number) * spec.std) + 1e-300)
      if (x.length < 4096) return
      let squares = 0
      for (const v of y) squares += v * v
      expect(Math.sqrt(squares / y.length) / spec.std).toBeGreaterThan(0.95)
      expect(Math.sqrt(squares / y.length) / spec.std).toBeLessThan(1.05)
    })
  })

  test("a standard deviation that is not above 0 is refused, naming the flag", () => {
    for (const bad of [0, -0.02, Number.POSITIVE_INFINITY, Number.NaN]) expect(() => InitMethod.check(bad)).toThrow(/--init-method-std/)
    expect(() => InitMethod.check(0.02)).not.toThrow()
    expect(() => InitMethod.check(undefined)).not.toThrow()
  })
})
