// Quantile balancing (semantics.md 2.1.9): each token's experts are the top-k of its logits minus
// beta and its cutoff alpha the (k+1)-th value, from their definition by sorting (ties to the
// lower index); beta_local is each expert's (col_target + 1)-th largest of S - alpha (the
// reference's column-quantile contract); one update from a router that prefers two experts
// brings the loads nearer m * k / E (the reference's own check); the update averages over the
// group, mixes by ema and re-centres to mean 0; selecting from the logits gathered over tp-cp
// gives every member its rows of the whole micro-batch's selection.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as QuantileBalancing from "../../src/moe/QuantileBalancing.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { logit, matrix } from "./arbitraries.js"

/** Indices of a row's values, largest first, ties to the lower index. */
const order = (row: ReadonlyArray<number>): Array<number> =>
  row
    .map((v, e) => [v, e] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .map(([, e]) => e)

/** A case: m tokens, E experts, k < E, logits with ties, a beta. */
const quantileCase = fc.record({ m: fc.integer({ min: 1, max: 12 }), e: fc.integer({ min: 2, max: 8 }), kRaw: fc.nat() }).chain(({ m, e, kRaw }) =>
  fc.record({
    e: fc.constant(e),
    k: fc.constant((kRaw % (e - 1)) + 1),
    logits: matrix(m, e, logit),
    beta: fc.array(fc.constantFrom(0, 0.5, -0.5, 1.25, -2), { minLength: e, maxLength: e }),
  }),
)

/** A Park-Miller stream of normals (Box-Muller), for the fixed-seed checks. */
const normals = (seed: number) => {
  let s = seed
  const u = () => {
    s = (s * 48271) % 2147483647
    return s / 2147483647
  }
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())
}

describe("QuantileBalancing", () => {
  test("select: the top-k of logits - beta, best first, and the (k+1)-th value as the cutoff", () => {
    fc.assert(
      fc.property(quantileCase, ({ e, k, logits, beta }) => {
        const got = QuantileBalancing.select(Float64Array.from(logits.flat()), logits.length, e, k, beta)
        logits.forEach((row, t) => {
          const shifted = row.map((v, j) => v - (beta[j] as number))
          const ranked = order(shifted)
          expect(Array.from(got.indices.subarray(t * k, (t + 1) * k))).toEqual(ranked.slice(0, k))
          expect(got.alpha[t]).toBe(shifted[ranked[k] as number])
        })
      }),
      { numRuns: 300 },
    )
  })

  test("localBeta: each expert's (col_target + 1)-th largest of S - alpha over the tokens", () => {
    fc.assert(
      fc.property(quantileCase, ({ e, k, logits, beta }) => {
        const m = logits.length
        fc.pre((m * k) % e === 0)
        const s = Float64Array.from(logits.flat())
        const { alpha } = QuantileBalancing.select(s, m, e, k, beta)
        const local = QuantileBalancing.localBeta(s, m, e, k, alpha)
        const target = (m * k) / e
        for (let j = 0; j < e; j++) {
          const column = logits.map((row, t) => (row[j] as number) - (alpha[t] as number)).sort((a, b) => b - a)
          expect(local[j]).toBe(column[target])
        }
      }),
      { numRuns: 300 },
    )
  })

  test("one update from a router that prefers two experts brings the loads nearer m * k / E", () => {
    for (const seed of [2, 17, 301, 4099, 65537]) {
      const next = normals(seed)
      const m = 512
      const e = 8
      const k = 2
      const s = Float64Array.from({ length: m * e }, (_, i) => next() + (i % e === 0 ? 4 : i % e === 1 ? 2 : 0))
      const zero = new Array<number>(e).fill(0)
      const first = QuantileBalancing.select(s, m, e, k, zero)
      const local = Array.from(QuantileBalancing.localBeta(s, m, e, k, first.alpha))
      const mean = local.reduce((a, b) => a + b, 0) / e
      const after = QuantileBalancing.select(
        s,
        m,
        e,
        k,
        local.map((b) => b - mean),
      )
      const imbalance = (indices: Int32Array) => {
        const counts = new Array<number>(e).fill(0)
        for (const i of indices) counts[i] = (counts[i] as number) + 1
        return counts.reduce((a, c) => a + Math.abs(c - (m * k) / e), 0)
      }
      expect(imbalance(after.indices), `seed ${seed}`).toBeLessThan(imbalance(first.indices) / 4)
    }
  })

  test("update: the group's mean of the forwards' mean beta_local, mixed by ema, re-centred; the sums start again", async () => {
    const beta = [0.5, -0.25, 0, -0.25]
    const states = [
      { beta, accum: [2, 4, 6, 8], count: 2 },
      { beta, accum: [3, 0, 3, 0], count: 3 },
    ]
    for (const ema of [0, 0.75]) {
      const updated = await Job.runPromise({ world: 2 }, (rank) => QuantileBalancing.update(states[rank] as QuantileBalancing.QuantileState, Group.world(2), ema))
      // Means per rank: [1, 2, 3, 4] and [1, 0, 1, 0]; over the group [1, 1, 2, 2].
      const mixed = [1, 1, 2, 2].map((avg, j) => ema * (beta[j] as number) + (1 - ema) * avg)
      const centre = mixed.reduce((a, b) => a + b, 0) / 4
      for (const u of updated) {
        u.beta.forEach((b, j) => expect(Math.abs(b - ((mixed[j] as number) - centre))).toBeLessThan(1e-15))
        expect(Math.abs(u.beta.reduce((a, b) => a + b, 0))).toBeLessThan(1e-15)
        expect(u.accum).toEqual([0, 0, 0, 0])
        expect(u.count).toBe(0)
      }
    }
    // No forward since the last update: beta re-centred, nothing added.
    const [idle] = await Job.runPromise({ world: 1 }, () => QuantileBalancing.update(QuantileBalancing.initial(3), Group.world(1), 0))
    expect(idle?.beta).toEqual([0, 0, 0])
  })

  test("selectGathered: every tp-cp member gets its rows of the whole micro-batch's selection, and the same beta_local", async () => {
    const world = 3
    const rows = 4
    const e = 6
    const k = 2
    const next = normals(99)
    const all = Array.from({ length: world * rows * e }, () => next())
    const beta = [0.1, -0.2, 0.3, 0, 0, -0.2]
    const whole = QuantileBalancing.select(Float64Array.from(all), world * rows, e, k, beta)
    const wholeLocal = QuantileBalancing.localBeta(Float64Array.from(all), world * rows, e, k, whole.alpha)
    const got = await Job.runPromise({ world }, (rank) => {
      const mine = Tensor.fromArray(all.slice(rank * rows * e, (rank + 1) * rows * e), [rows, e], { dtype: "float64" })
      return QuantileBalancing.selectGathered(mine, Group.world(world), k, beta, true)
    })
    got.forEach((g, rank) => {
      expect(Array.from(g.indices)).toEqual(Array.from(whole.indices.subarray(rank * rows * k, (rank + 1) * rows * k)))
      expect(Array.from(g.local ?? [])).toEqual(Array.from(wholeLocal))
    })
    // Evaluation: the same selection, no beta_local.
    const evaluation = await Job.runPromise({ world: 1 }, () =>
      QuantileBalancing.selectGathered(Tensor.fromArray(all.slice(0, rows * e), [rows, e], { dtype: "float64" }), undefined, k, beta, false),
    )
    expect(evaluation[0]?.local).toBeUndefined()
  })
})
