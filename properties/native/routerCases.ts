// Router cases for the kernels that twin moe/Router.ts (the CUDA router and its host
// emulation): random shapes over every score function (sqrtsoftplus included), group-limited or not, with a bias for
// sigmoid and sqrtsoftplus and a scaling factor or none, and what Router.select and probsFor give for them.
import fc from "fast-check"
import * as Router from "../../src/moe/Router.js"
import * as Tensor from "../../src/tensor/Tensor.js"

/** One routing problem, in the fields the kernels take. */
export interface RouterCase {
  readonly tokens: number
  readonly experts: number
  readonly logits: Float32Array
  readonly spec: {
    readonly topk: number
    readonly mode: "pre" | "post" | "sigmoid" | "sqrtsoftplus"
    readonly numGroups: number | undefined
    readonly groupTopk: number | undefined
    readonly bias: Float64Array | undefined
    readonly scale: number
  }
}

const floats = (n: number, seed: number, spread = 8) => {
  let s = seed >>> 0 || 1
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * spread)
}

/** Cases of up to `maxTokens` tokens, 1-8 groups of 1-32 experts, top-1..8. */
export const routerCases = (maxTokens: number): fc.Arbitrary<RouterCase> =>
  fc
    .record({
      tokens: fc.integer({ min: 1, max: maxTokens }),
      groupsLog: fc.integer({ min: 0, max: 3 }),
      perGroup: fc.integer({ min: 1, max: 32 }),
      mode: fc.constantFrom("pre" as const, "post" as const, "sigmoid" as const, "sqrtsoftplus" as const),
      grouped: fc.boolean(),
      scaled: fc.boolean(),
      seed: fc.integer(),
    })
    .map(({ tokens, groupsLog, perGroup, mode, grouped, scaled, seed }) => {
      const numGroups = 2 ** groupsLog
      const experts = numGroups * perGroup
      const groupTopk = Math.max(1, numGroups / 2)
      const topk = Math.max(1, Math.min(8, grouped ? groupTopk * perGroup : experts, 1 + ((seed >>> 0) % 8)))
      const bias = mode === "sigmoid" || mode === "sqrtsoftplus" ? Float64Array.from(floats(experts, seed + 1, 0.8)) : undefined
      const spec = { topk, mode, numGroups: grouped ? numGroups : undefined, groupTopk: grouped ? groupTopk : undefined, bias, scale: scaled ? 2.5 : 1 }
      return { tokens, experts, logits: floats(tokens * experts, seed), spec }
    })

/** Router.select's experts [T * K] and probsFor's dense probs [T * E] for the case. */
export const expected = (c: RouterCase): { readonly indices: Int32Array; readonly probs: Float32Array } => {
  const options: Router.RouterOptions = {
    topk: c.spec.topk,
    scoreFunction: c.spec.mode === "pre" || c.spec.mode === "post" ? "softmax" : c.spec.mode,
    preSoftmax: c.spec.mode === "pre",
    numGroups: c.spec.numGroups ?? null,
    groupTopk: c.spec.groupTopk ?? null,
    scalingFactor: c.spec.scale === 1 ? null : c.spec.scale,
    expertBias: c.spec.bias ?? null,
  }
  const x = Tensor.fromStorage(c.logits, [c.tokens, c.experts])
  const indices = Router.select(x, options)
  return { indices, probs: Router.probsFor(x, indices, options).data as Float32Array }
}
