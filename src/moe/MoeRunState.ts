/**
 * MoeRunState: what the MoE layers of one rank keep across the micro-batches of a global
 * batch: the running expert counts of global_aux_loss (semantics.md 2.1.3), one per MoE layer,
 * reset after each global batch (as the reference's finalize-grads does).
 */
import * as AuxLoss from "./AuxLoss.js"

/**
 * One rank's state, by layer.
 * @category models
 */
export interface MoeRunState {
  readonly global: Map<number, { counts: AuxLoss.GlobalCounts }>
}

/**
 * An empty state.
 * @category constructors
 */
export const make = (): MoeRunState => ({ global: new Map() })

/**
 * The global_aux_loss counts of a layer (created empty on first use).
 * @category mapping
 */
export const globalCounts = (state: MoeRunState, layer: number, numExperts: number): { counts: AuxLoss.GlobalCounts } => {
  const held = state.global.get(layer)
  if (held !== undefined) return held
  const fresh = { counts: AuxLoss.emptyGlobalCounts(numExperts) }
  state.global.set(layer, fresh)
  return fresh
}

/**
 * After a global batch: every layer's counts start again from zero.
 * @category combinators
 */
export const endGlobalBatch = (state: MoeRunState): void => state.global.clear()
