/**
 * Routing: fast-check arbitraries of routing cases (router options that pass MoeSettings.check,
 * and router logits with many ties) for users' properties of their own MoE layers.
 */
import fc from "fast-check"
import * as Divisors from "../mapping/Divisors.js"
import * as MoeSettings from "../moe/MoeSettings.js"

/**
 * A routing case: the experts, top-k, router options and a [tokens, experts] logit matrix.
 * @category models
 */
export interface RoutingCase {
  readonly experts: number
  readonly topk: number
  readonly settings: MoeSettings.MoeSettings
  readonly logits: ReadonlyArray<ReadonlyArray<number>>
}

/** Often a small integer (ties between experts), sometimes any double in a range. */
const logit = fc.oneof(fc.integer({ min: -2, max: 2 }), fc.double({ min: -6, max: 6, noNaN: true, noDefaultInfinity: true }))

/**
 * Routing cases with up to `maxTokens` tokens and `maxExperts` experts: softmax (pre- or
 * post-top-k) or sigmoid scores, group-limited routing, scaling, dropless or a capacity
 * factor with either drop policy and padding.
 * @category constructors
 */
export const routingCases = (maxTokens = 8, maxExperts = 8): fc.Arbitrary<RoutingCase> =>
  fc
    .record({ experts: fc.integer({ min: 1, max: maxExperts }), tokens: fc.integer({ min: 0, max: maxTokens }), kPick: fc.nat(), groupPick: fc.nat() })
    .chain(({ experts, tokens, kPick, groupPick }) => {
      const topk = (kPick % experts) + 1
      const groupings = Divisors.of(experts).flatMap((g) =>
        Divisors.of(g)
          .filter((gk) => topk <= gk * (experts / g))
          .map((gk) => ({ numGroups: g, groupTopk: gk })),
      )
      const grouping = groupings.length > 0 && groupPick % 3 === 0 ? groupings[groupPick % groupings.length] : undefined
      return fc.record({
        experts: fc.constant(experts),
        topk: fc.constant(topk),
        settings: fc
          .record({
            scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
            preSoftmax: fc.boolean(),
            scalingFactor: fc.option(fc.constantFrom(0.5, 1, 2.5), { nil: undefined }),
            capacityFactor: fc.option(fc.constantFrom(0.5, 1, 1.25, 2), { nil: undefined }),
            dropPolicy: fc.constantFrom("probs" as const, "position" as const),
            padToCapacity: fc.boolean(),
          })
          .map(({ scoreFunction, preSoftmax, scalingFactor, capacityFactor, dropPolicy, padToCapacity }) => ({
            ...MoeSettings.defaults,
            scoreFunction,
            preSoftmax: scoreFunction === "softmax" && preSoftmax,
            ...(grouping === undefined ? {} : grouping),
            ...(scalingFactor === undefined ? {} : { scalingFactor }),
            ...(capacityFactor === undefined ? {} : { capacityFactor }),
            dropPolicy,
            padToCapacity: capacityFactor !== undefined && padToCapacity,
          })),
        logits: fc.array(fc.array(logit, { minLength: experts, maxLength: experts }), { minLength: tokens, maxLength: tokens }),
      })
    })
    .filter((c) => {
      try {
        MoeSettings.check(c.settings, c.experts, c.topk)
        return true
      } catch {
        return false
      }
    })
