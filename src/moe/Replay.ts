/**
 * Replay: one single-rank MoE routing case, decoded from JSON and run end to end in float64:
 * route (Router), drop / pad (Dropping), permute and unpermute (Permute), aux loss and z-loss
 * (AuxLoss). `pleat moe replay` prints `run(decode(json))`.
 *
 * Shape legend: T tokens, E experts, K topk, H hidden, N routed rows (after dropping/padding).
 *
 * Case (every key required; `pleat moe replay` refuses any other key, suggesting the nearest one):
 *   numExperts E (integer >= 1), topk K (integer, 1..E), scoreFunction "softmax" | "sigmoid" | "sqrtsoftplus",
 *   preSoftmax bool, capacityFactor number | null, dropPolicy "probs" | "position",
 *   padToCapacity bool, numGroups int | null, groupTopk int | null, scalingFactor number | null,
 *   expertBias [E] | null, logits [T][E], tokens [T][H]
 * Output, keys in this order:
 *   probs [T][E], routingMap [T][E] of 0/1 (both after dropping / padding), tokensPerExpert [E],
 *   sortedIndices [N], permuted [N][H], unpermuted [T][H] (plain sum of the routed copies),
 *   unpermutedWeighted [T][H] (probs-weighted sum), auxLoss (the `aux_loss` type, coeff 1, this
 *   rank's T tokens, group size 1), zLoss (coeff 1)
 *
 * Edge semantics (see the modules for the reference sections):
 *   - T = 0: logits and tokens are []; every output array is empty (tokensPerExpert is E
 *     zeros); auxLoss = 0 and zLoss = 0. H = 0: rows are [].
 *   - capacityFactor null or negative: dropless (2.8), padToCapacity is then ignored (the
 *     reference drops only when a factor is set). 0 drops every token.
 *   - dropPolicy is checked even when dropless (the contract lists it as malformed).
 *   - padding (2.2.6): each expert holds exactly min(C, T) rows; fillers are the lowest-index
 *     unrouted tokens (see Dropping), have prob 0, and appear in sortedIndices / permuted at
 *     their token's position inside their expert's block (Permute). They add x[t] to
 *     `unpermuted` and nothing to `unpermutedWeighted`.
 *   - an expert with no rows has tokensPerExpert 0 and no rows in the output.
 *   - expertBias with softmax is ignored (6.9); scalingFactor 0 means no scaling (the
 *     reference's `if scaling_factor`).
 *   - non-finite inputs (1e999 is Infinity once parsed) are refused naming the field and index.
 *     A finite case whose result overflows float64 (the z-loss of logits near 1e154, sums of
 *     tokens near 1e308) is refused by `pleat moe replay` naming the input that overflowed
 *     (JSON cannot carry Infinity); `run` itself returns the IEEE result.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as Tensor from "../tensor/Tensor.js"
import * as AuxLoss from "./AuxLoss.js"
import * as Capacity from "./Capacity.js"
import * as Dropping from "./Dropping.js"
import * as Permute from "./Permute.js"
import * as Router from "./Router.js"
import * as RoutingMap from "./RoutingMap.js"

/**
 * A decoded, checked case.
 * @category models
 */
export interface Case {
  readonly numExperts: number
  readonly topk: number
  readonly scoreFunction: Router.ScoreFunction
  readonly preSoftmax: boolean
  readonly capacityFactor: number | null
  readonly dropPolicy: Dropping.DropPolicy
  readonly padToCapacity: boolean
  readonly numGroups: number | null
  readonly groupTopk: number | null
  readonly scalingFactor: number | null
  readonly expertBias: ReadonlyArray<number> | null
  readonly logits: ReadonlyArray<ReadonlyArray<number>>
  readonly tokens: ReadonlyArray<ReadonlyArray<number>>
}

/**
 * The output of a case, keys in contract order.
 * @category models
 */
export interface Output {
  readonly probs: Array<Array<number>>
  readonly routingMap: Array<Array<number>>
  readonly tokensPerExpert: Array<number>
  readonly sortedIndices: Array<number>
  readonly permuted: Array<Array<number>>
  readonly unpermuted: Array<Array<number>>
  readonly unpermutedWeighted: Array<Array<number>>
  readonly auxLoss: number
  readonly zLoss: number
}

/**
 * The keys of a case, in the order they are checked.
 * @category configuration
 */
export const caseKeys = [
  "numExperts",
  "topk",
  "scoreFunction",
  "preSoftmax",
  "capacityFactor",
  "dropPolicy",
  "padToCapacity",
  "numGroups",
  "groupTopk",
  "scalingFactor",
  "expertBias",
  "logits",
  "tokens",
] as const

/** A value shown in an error as written (arrays and objects as short JSON, not quoted). */
class Shown {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
  toString(): string {
    return this.text
  }
}

/**
 * A value as an error shows it: itself, or an array or object as JSON cut to 40 characters.
 * @category mapping
 */
export const shown = (v: unknown): unknown => {
  if (v === null || typeof v !== "object") return v
  const text = JSON.stringify(v)
  return new Shown(text.length > 40 ? `${text.slice(0, 37)}...` : text)
}

const integer = (record: Record<string, unknown>, key: string, nullable: boolean, fix: string): number | null => {
  const v = record[key]
  if (v === undefined) throw ConfigError.make(key, undefined, "is missing", fix)
  if (v === null && nullable) return null
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw ConfigError.make(key, shown(v), `is not a positive integer${nullable ? " or null" : ""}`, fix)
  }
  return v
}

const finiteOrNull = (record: Record<string, unknown>, key: string, fix: string): number | null => {
  const v = record[key]
  if (v === undefined) throw ConfigError.make(key, undefined, "is missing", fix)
  if (v === null) return null
  if (typeof v !== "number" || !Number.isFinite(v)) throw ConfigError.make(key, shown(v), "is not a finite number or null", fix)
  return v
}

const boolean = (record: Record<string, unknown>, key: string): boolean => {
  const v = record[key]
  if (v === undefined) throw ConfigError.make(key, undefined, "is missing", "write true or false")
  if (typeof v !== "boolean") throw ConfigError.make(key, shown(v), "is not a boolean", "write true or false")
  return v
}

const oneOf = <A extends string>(record: Record<string, unknown>, key: string, allowed: ReadonlyArray<A>, what: string): A => {
  const v = record[key]
  const fix = `use one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`
  if (v === undefined) throw ConfigError.make(key, undefined, "is missing", fix)
  if (typeof v !== "string" || !(allowed as ReadonlyArray<string>).includes(v)) throw ConfigError.make(key, shown(v), `is not ${what}`, fix)
  return v as A
}

/** A row of finite numbers named `field` (e.g. `logits[3]`). */
const numberRow = (v: unknown, field: string, fix: string): Array<number> => {
  if (!Array.isArray(v)) throw ConfigError.make(field, shown(v), "is not an array of numbers", fix)
  v.forEach((x, j) => {
    if (typeof x !== "number") throw ConfigError.make(`${field}[${j}]`, shown(x), "is not a number", fix)
    if (!Number.isFinite(x)) throw ConfigError.make(`${field}[${j}]`, x, "is not a finite number", "give finite numbers")
  })
  return v as Array<number>
}

/** A [rows][cols] matrix named `key`; cols undefined means "whatever the first row has". */
const matrix = (record: Record<string, unknown>, key: string, cols: number | undefined, colsName: string): Array<Array<number>> => {
  const v = record[key]
  const fix = `give ${key} as an array of rows of ${colsName} numbers each`
  if (v === undefined) throw ConfigError.make(key, undefined, "is missing", fix)
  if (!Array.isArray(v)) throw ConfigError.make(key, shown(v), "is not an array of rows", fix)
  const rows = v.map((row, t) => numberRow(row, `${key}[${t}]`, fix))
  const width = cols ?? rows[0]?.length ?? 0
  rows.forEach((row, t) => {
    if (row.length !== width) {
      throw ConfigError.make(`${key}[${t}]`, row.length, `is the row's length, but ${cols === undefined ? `${key}[0] has` : `${colsName} is`} ${width}`, fix)
    }
  })
  return rows
}

/**
 * Checks a parsed JSON value as a case; the first problem is a ConfigError naming the field.
 * @category constructors
 */
export const decode = (json: unknown): Case => {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw ConfigError.make("case", shown(json), "is not a JSON object", `write one object with the keys ${caseKeys.join(", ")}`)
  }
  const r = json as Record<string, unknown>
  const numExperts = integer(r, "numExperts", false, "give the number of experts, an integer >= 1") as number
  const topk = integer(r, "topk", false, `route each token to 1..${numExperts} experts`) as number
  const scoreFunction = oneOf(r, "scoreFunction", Router.scoreFunctions, "a score function")
  const preSoftmax = boolean(r, "preSoftmax")
  const capacityFactor = finiteOrNull(r, "capacityFactor", "give a capacity factor, or null for dropless")
  const dropPolicy = oneOf(r, "dropPolicy", Dropping.dropPolicies, "a drop policy")
  const padToCapacity = boolean(r, "padToCapacity")
  const numGroups = integer(r, "numGroups", true, "give a divisor of numExperts, or null")
  const groupTopk = integer(r, "groupTopk", true, "give a divisor of numGroups, or null")
  const scalingFactor = finiteOrNull(r, "scalingFactor", "give a number, or null")
  const biasValue = r.expertBias
  if (biasValue === undefined) throw ConfigError.make("expertBias", undefined, "is missing", "give one number per expert, or null")
  const expertBias = biasValue === null ? null : numberRow(biasValue, "expertBias", "give one number per expert, or null")
  Router.check(numExperts, { topk, scoreFunction, preSoftmax, numGroups, groupTopk, scalingFactor, expertBias })
  const logits = matrix(r, "logits", numExperts, "numExperts")
  const tokens = matrix(r, "tokens", undefined, "H")
  if (tokens.length !== logits.length) {
    throw ConfigError.make("tokens", tokens.length, `rows, but logits has ${logits.length} rows`, "give one tokens row per logits row")
  }
  return {
    numExperts,
    topk,
    scoreFunction,
    preSoftmax,
    capacityFactor,
    dropPolicy,
    padToCapacity,
    numGroups,
    groupTopk,
    scalingFactor,
    expertBias,
    logits,
    tokens,
  }
}

/** A [rows, cols] tensor as nested rows. */
const rowsOf = (t: Tensor.Tensor): Array<Array<number>> => {
  const rows = t.shape[0] ?? 0
  const cols = rows === 0 ? 0 : t.size / rows
  const out: Array<Array<number>> = []
  for (let r = 0; r < rows; r++) out.push(Array.from(t.data.subarray(r * cols, (r + 1) * cols)))
  return out
}

/**
 * Runs a case: route, drop / pad, permute, unpermute (plain and weighted), aux loss, z-loss.
 * @category combinators
 */
export const run = (c: Case): Output => {
  const t = c.logits.length
  const e = c.numExperts
  const h = c.tokens[0]?.length ?? 0
  const logits = Tensor.fromArray(c.logits.flat(), [t, e], { dtype: "float64" })
  const tokens = Tensor.fromArray(c.tokens.flat(), [t, h], { dtype: "float64" })
  const routed = Router.routing(logits, {
    topk: c.topk,
    scoreFunction: c.scoreFunction,
    preSoftmax: c.preSoftmax,
    numGroups: c.numGroups,
    groupTopk: c.groupTopk,
    scalingFactor: c.scalingFactor,
    expertBias: c.expertBias,
  })
  const final = Capacity.isDropless(c.capacityFactor)
    ? { probs: routed.probs, routingMap: routed.routingMap }
    : Dropping.applyTokenDropping(routed.probs, routed.routingMap, {
        topk: c.topk,
        capacityFactor: c.capacityFactor,
        dropPolicy: c.dropPolicy,
        padToCapacity: c.padToCapacity,
      })
  const p = Permute.permute(tokens, final.routingMap, final.probs)
  const unpermuted = Permute.unpermute(p.permuted, p.sortedIndices, t)
  const unpermutedWeighted = Permute.unpermute(p.permuted, p.sortedIndices, t, p.permutedProbs)
  const aux = AuxLoss.auxLoss(routed.scores, routed.auxRoutingMap, { topk: c.topk, coeff: 1 })
  const z = AuxLoss.zLoss(logits, 1)
  return {
    probs: rowsOf(final.probs),
    routingMap: RoutingMap.toNested(final.routingMap),
    tokensPerExpert: [...p.tokensPerExpert],
    sortedIndices: Array.from(p.sortedIndices),
    permuted: rowsOf(p.permuted),
    unpermuted: rowsOf(unpermuted),
    unpermutedWeighted: rowsOf(unpermutedWeighted),
    auxLoss: Tensor.item(aux),
    zLoss: Tensor.item(z),
  }
}
