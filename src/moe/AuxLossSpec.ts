/**
 * AuxLossSpec: the load-balancing losses as `--aux-loss` writes them (`TYPE:COEFF[,TYPE:COEFF]`,
 * or `none`), parsed into terms in the reference's order (semantics.md 2.1.3) and written back.
 */
import * as ConfigError from "../errors/ConfigError.js"

/**
 * The load-balancing losses, by their flag names (semantics.md 2.1.3).
 * @category models
 */
export type AuxLossType = "aux" | "seq_aux" | "global_aux"

/** The load-balancing loss types, in the order the reference applies them. */
const auxLossTypes: ReadonlyArray<AuxLossType> = ["aux", "seq_aux", "global_aux"]

/**
 * One load-balancing loss and its coefficient.
 * @category models
 */
export interface AuxLossTerm {
  readonly type: AuxLossType
  readonly coeff: number
}

/**
 * Parses `TYPE:COEFF[,TYPE:COEFF]` (e.g. `aux:0.01,seq_aux:0.001`; `none` for no aux loss)
 * into terms in the reference's order; throws a ConfigError on the field `auxLoss`.
 * @category constructors
 */
export const parseAuxLoss = (text: string): ReadonlyArray<AuxLossTerm> => {
  const fix = `write TYPE:COEFF[,TYPE:COEFF] with TYPE among ${auxLossTypes.join(", ")} and COEFF >= 0, e.g. aux:0.01, or none`
  if (text.trim() === "none") return []
  const terms: Array<AuxLossTerm> = []
  for (const part of text.split(",")) {
    const [type, coeffText, ...rest] = part.trim().split(":")
    const coeff = Number(coeffText)
    if (rest.length > 0 || coeffText === undefined || coeffText.trim() === "" || !auxLossTypes.includes(type as AuxLossType))
      throw ConfigError.make("auxLoss", text, `has "${part}", not TYPE:COEFF`, fix)
    if (!Number.isFinite(coeff) || coeff < 0) throw ConfigError.make("auxLoss", text, `has the coefficient "${coeffText}", not a number >= 0`, fix)
    if (terms.some((t) => t.type === type)) throw ConfigError.make("auxLoss", text, `gives ${type} twice`, fix)
    terms.push({ type: type as AuxLossType, coeff })
  }
  return terms.sort((a, b) => auxLossTypes.indexOf(a.type) - auxLossTypes.indexOf(b.type))
}

/**
 * The aux-loss terms as the flag writes them.
 * @category mapping
 */
export const formatAuxLoss = (terms: ReadonlyArray<AuxLossTerm>): string => (terms.length === 0 ? "none" : terms.map((t) => `${t.type}:${t.coeff}`).join(","))
