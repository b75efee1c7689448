/**
 * DispatchPlan: what a permute learned about one rank's routed rows, as an immutable value that
 * later steps (the exchange between ranks, the combine) consume instead of hidden state
 * (semantics.md 2.2.2, 2.4; style 9.6).
 *
 * Shape legend: T tokens, E experts, N routed rows (pairs of the routing map), D destinations.
 *
 *   sortedIndices [N]  token of each permuted row (expert-major, token-ascending)
 *   experts       [N]  expert of each permuted row (non-decreasing)
 *   tokensPerExpert [E] rows per expert; offsets(plan) [E + 1] where each expert's rows start
 *   splits        [D]  rows per destination: D contiguous blocks of E / D experts (an EP rank
 *                      owns experts [d * E/D, (d+1) * E/D), 2.0); D = E by default, so the
 *                      splits are then the rows per expert
 *   probs         [N]  the prob of each row, when the permute was given probs (values only)
 *
 * Worked example (2.3): T=3, E=4, t0 -> {0,2}, t1 -> {1,3}, t2 -> {0,1}:
 *   sortedIndices [0,2,1,2,0,1], experts [0,0,1,1,2,3], tokensPerExpert [2,2,1,1],
 *   offsets [0,2,4,5,6], splits with D = 2: [4,2].
 *
 * Every array is a frozen plain array and the plan itself is frozen. A plan made by a permute
 * (`fromOrder`) holds its rows as typed arrays and makes the plain arrays of N entries on first
 * read (a permute of 131k rows would otherwise spend longer building them than moving the rows);
 * `rowTokens` / `rowExperts` give the typed arrays themselves, never to be written.
 */
import * as TensorError from "../tensor/TensorError.js"

/**
 * The plan of one permute.
 * @category models
 */
export interface DispatchPlan {
  readonly numTokens: number
  readonly numExperts: number
  readonly sortedIndices: ReadonlyArray<number>
  readonly experts: ReadonlyArray<number>
  readonly tokensPerExpert: ReadonlyArray<number>
  readonly splits: ReadonlyArray<number>
  readonly probs: ReadonlyArray<number> | undefined
}

/**
 * The typed rows behind plans made by `fromOrder`, and the plain arrays made of them on first
 * use (plans are frozen; this is their store).
 */
interface Rows {
  readonly tokens: Int32Array
  readonly experts: Int32Array
  readonly probs: (() => ArrayLike<number>) | undefined
  sortedIndices?: ReadonlyArray<number>
  expertList?: ReadonlyArray<number>
  probList?: ReadonlyArray<number>
}
const typedRows = new WeakMap<DispatchPlan, Rows>()

/**
 * Rows per destination when D destinations own contiguous, equal blocks of experts.
 * @category mapping
 */
export const splitsFor = (tokensPerExpert: ReadonlyArray<number>, numDestinations: number): Array<number> => {
  const e = tokensPerExpert.length
  if (!Number.isSafeInteger(numDestinations) || numDestinations < 1 || e % numDestinations !== 0) {
    throw TensorError.shape("DispatchPlan.splitsFor", `${numDestinations} destinations do not divide ${e} experts`)
  }
  const per = e / numDestinations
  const out = new Array<number>(numDestinations).fill(0)
  tokensPerExpert.forEach((c, j) => {
    const d = Math.floor(j / per)
    out[d] = (out[d] as number) + c
  })
  return out
}

/**
 * A checked, frozen plan: `experts` must be non-decreasing, tokens ascending within an expert,
 * and `tokensPerExpert` must count `experts`.
 * @category constructors
 */
export const make = (fields: {
  readonly numTokens: number
  readonly numExperts: number
  readonly sortedIndices: ArrayLike<number>
  readonly experts: ArrayLike<number>
  readonly probs?: ArrayLike<number> | undefined
  readonly numDestinations?: number | undefined
}): DispatchPlan => {
  const { numTokens, numExperts } = fields
  const n = fields.sortedIndices.length
  const fail = (detail: string) => TensorError.shape("DispatchPlan.make", detail)
  if (fields.experts.length !== n) throw fail(`${n} rows but ${fields.experts.length} experts`)
  if (fields.probs !== undefined && fields.probs.length !== n) throw fail(`${n} rows but ${fields.probs.length} probs`)
  const tokensPerExpert = new Array<number>(numExperts).fill(0)
  for (let j = 0; j < n; j++) {
    const t = fields.sortedIndices[j] as number
    const e = fields.experts[j] as number
    if (!Number.isInteger(t) || t < 0 || t >= numTokens) throw fail(`row ${j}: token ${t} is outside [0, ${numTokens})`)
    if (!Number.isInteger(e) || e < 0 || e >= numExperts) throw fail(`row ${j}: expert ${e} is outside [0, ${numExperts})`)
    if (j > 0) {
      const pe = fields.experts[j - 1] as number
      const pt = fields.sortedIndices[j - 1] as number
      if (e < pe || (e === pe && t <= pt)) throw fail(`row ${j}: (expert ${e}, token ${t}) is not after (expert ${pe}, token ${pt})`)
    }
    tokensPerExpert[e] = (tokensPerExpert[e] as number) + 1
  }
  return Object.freeze({
    numTokens,
    numExperts,
    sortedIndices: Object.freeze(Array.from(fields.sortedIndices)),
    experts: Object.freeze(Array.from(fields.experts)),
    tokensPerExpert: Object.freeze(tokensPerExpert),
    splits: Object.freeze(splitsFor(tokensPerExpert, fields.numDestinations ?? numExperts)),
    probs: fields.probs === undefined ? undefined : Object.freeze(Array.from(fields.probs)),
  })
}

const frozen = (a: ArrayLike<number>) => Object.freeze(Array.from(a))
const rowsOf = (plan: DispatchPlan): Rows => typedRows.get(plan) as Rows

// The lazy fields' getters, one function each for every plan: getters made per plan would give
// each plan a hidden class of its own (scripts/check-spreads.mjs says why that costs).
function sortedIndicesOf(this: DispatchPlan): ReadonlyArray<number> {
  const rows = rowsOf(this)
  rows.sortedIndices ??= frozen(rows.tokens)
  return rows.sortedIndices
}
function expertsOf(this: DispatchPlan): ReadonlyArray<number> {
  const rows = rowsOf(this)
  rows.expertList ??= frozen(rows.experts)
  return rows.expertList
}
function probsOf(this: DispatchPlan): ReadonlyArray<number> | undefined {
  const rows = rowsOf(this)
  if (rows.probs === undefined) return undefined
  rows.probList ??= frozen(rows.probs())
  return rows.probList
}

/**
 * The plan of rows already in expert-major, token-ascending order (a permute's counting sort
 * made them so; `make` checks rows from elsewhere): `tokensPerExpert` must count `experts`.
 * The typed arrays are copied; `probs`, when given, is read on first use of `plan.probs`.
 * @category constructors
 */
export const fromOrder = (fields: {
  readonly numTokens: number
  readonly numExperts: number
  readonly sortedIndices: Int32Array
  readonly experts: Int32Array
  readonly tokensPerExpert: ArrayLike<number>
  readonly probs?: (() => ArrayLike<number>) | undefined
  readonly numDestinations?: number | undefined
}): DispatchPlan => {
  const tokens = fields.sortedIndices.slice()
  const experts = fields.experts.slice()
  const tokensPerExpert = Object.freeze(Array.from(fields.tokensPerExpert))
  const splits = Object.freeze(splitsFor(tokensPerExpert, fields.numDestinations ?? fields.numExperts))
  const plan = Object.defineProperties(
    {},
    {
      numTokens: { value: fields.numTokens, enumerable: true },
      numExperts: { value: fields.numExperts, enumerable: true },
      sortedIndices: { get: sortedIndicesOf, enumerable: true },
      experts: { get: expertsOf, enumerable: true },
      tokensPerExpert: { value: tokensPerExpert, enumerable: true },
      splits: { value: splits, enumerable: true },
      probs: { get: probsOf, enumerable: true },
    },
  ) as DispatchPlan
  typedRows.set(plan, { tokens, experts, probs: fields.probs })
  return Object.freeze(plan)
}

/**
 * The token of each row as an Int32Array, without a copy where the plan holds one (never
 * write it).
 * @category mapping
 */
export const rowTokens = (plan: DispatchPlan): Int32Array => typedRows.get(plan)?.tokens ?? Int32Array.from(plan.sortedIndices)

/**
 * The expert of each row as an Int32Array, without a copy where the plan holds one (never
 * write it).
 * @category mapping
 */
export const rowExperts = (plan: DispatchPlan): Int32Array => typedRows.get(plan)?.experts ?? Int32Array.from(plan.experts)

/**
 * N, the number of permuted rows.
 * @category mapping
 */
export const numRows = (plan: DispatchPlan): number => typedRows.get(plan)?.tokens.length ?? plan.sortedIndices.length

/**
 * Where each expert's rows start, [E + 1] (the last entry is N).
 * @category mapping
 */
export const offsets = (plan: DispatchPlan): Array<number> => {
  const out = [0]
  for (const c of plan.tokensPerExpert) out.push((out[out.length - 1] as number) + c)
  return out
}

/**
 * The token of each row as an Int32Array (a new copy, for gather / scatter ops).
 * @category mapping
 */
export const indexArray = (plan: DispatchPlan): Int32Array => rowTokens(plan).slice()
