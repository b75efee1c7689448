// Arbitraries of the MoE suites: routing cases with many ties (small integer logits), groups
// that fit, every capacity regime (dropless, 0, tight, loose, larger than T, negative), padding.
import fc from "fast-check"
import type { Matrix, OracleCase } from "./oracle.js"

/** A finite logit: often a small integer (ties), sometimes any double in a range. */
export const logit = fc.oneof(fc.integer({ min: -2, max: 2 }), fc.double({ min: -6, max: 6, noNaN: true, noDefaultInfinity: true }))

export const tokenValue = fc.double({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true })

export const matrix = (rows: number, cols: number, value: fc.Arbitrary<number>): fc.Arbitrary<Matrix> =>
  fc.array(fc.array(value, { minLength: cols, maxLength: cols }), { minLength: rows, maxLength: rows })

const divisors = (n: number): Array<number> => [...Array(n).keys()].map((i) => i + 1).filter((d) => n % d === 0)

/** numGroups / groupTopk that pass the checks for E and K, or both null. */
export const groupsFor = (e: number, k: number): fc.Arbitrary<{ numGroups: number | null; groupTopk: number | null }> => {
  const options: Array<{ numGroups: number; groupTopk: number }> = []
  for (const g of divisors(e)) {
    for (const gk of divisors(g)) if (k <= gk * (e / g)) options.push({ numGroups: g, groupTopk: gk })
  }
  return fc.oneof(fc.constant({ numGroups: null, groupTopk: null }), fc.constantFrom(...options))
}

export const capacityFactor = fc.oneof(fc.constant(null), fc.constantFrom(0, 0.25, 0.5, 1, 1.25, 2, 8, -1), fc.double({ min: 0, max: 3, noNaN: true }))

/** A whole valid case; T may be 0 and H may be 0. */
export const routingCase = (maxTokens = 6, maxExperts = 8): fc.Arbitrary<OracleCase> =>
  fc
    .record({
      e: fc.integer({ min: 1, max: maxExperts }),
      t: fc.integer({ min: 0, max: maxTokens }),
      h: fc.integer({ min: 0, max: 3 }),
      kRaw: fc.nat(),
    })
    .chain(({ e, t, h, kRaw }) => {
      const k = (kRaw % e) + 1
      return fc.record({
        numExperts: fc.constant(e),
        topk: fc.constant(k),
        scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
        preSoftmax: fc.boolean(),
        capacityFactor,
        dropPolicy: fc.constantFrom("probs" as const, "position" as const),
        padToCapacity: fc.boolean(),
        groups: groupsFor(e, k),
        scalingFactor: fc.oneof(fc.constant(null), fc.constant(0), fc.double({ min: -2, max: 3, noNaN: true })),
        expertBias: fc.oneof(fc.constant(null), fc.array(fc.constantFrom(0, 0.5, -0.5, 1, 0.25), { minLength: e, maxLength: e })),
        logits: matrix(t, e, logit),
        tokens: matrix(t, h, tokenValue),
      })
    })
    .map(({ groups, ...rest }) => ({ ...rest, ...groups }))

export const seed = fc.integer({ min: 1, max: 1_000_000 })
