/**
 * fast-check arbitraries for parallel configurations: random factorizations of worlds up to
 * 4096 ranks, every order, and the same with one thing broken.
 */
import fc from "fast-check"
import { type OracleInput, allOrders } from "./oracle.js"

const divisorsOf = (n: number): Array<number> => {
  const out: Array<number> = []
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d)
  return out
}

/** Small degrees, biased to the powers of two real jobs use but with odd ones too. */
const degree = fc.oneof(fc.constantFrom(1, 2, 4, 8, 16), fc.integer({ min: 1, max: 6 }))

/** Orders that put tp before ep (the others are always rejected). */
const tpBeforeEp = allOrders.filter((o) => o.indexOf("tp") < o.indexOf("ep"))

/**
 * A factorized world: tp, cp, pp, dp with product <= maxWorld, then etp and ep whose product
 * divides world/pp (so the expert grid fits), and any of the 60 orders with tp before ep
 * (the other 60 are always rejected; `anyDegrees` covers them).
 */
export const factorized = (maxWorld = 4096): fc.Arbitrary<OracleInput> =>
  fc
    .record({ tp: degree, cp: degree, pp: degree, dp: degree, order: fc.constantFrom(...tpBeforeEp) })
    .filter(({ tp, cp, pp, dp }) => tp * cp * pp * dp <= maxWorld)
    .chain(({ tp, cp, pp, dp, order }) => {
      const world = tp * cp * pp * dp
      const perStage = world / pp
      return fc.constantFrom(...divisorsOf(perStage)).chain((etp) => fc.constantFrom(...divisorsOf(perStage / etp)).map((ep) => ({ world, tp, cp, pp, ep, etp, order })))
    })

/** Any combination of small degrees and orders, valid or not. */
export const anyDegrees: fc.Arbitrary<OracleInput> = fc.record({
  world: fc.integer({ min: 1, max: 256 }),
  tp: degree,
  cp: degree,
  pp: degree,
  ep: degree,
  etp: degree,
  order: fc.constantFrom(...allOrders),
})
