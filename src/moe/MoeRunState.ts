/**
 * MoeRunState: what the MoE layers of one rank keep across the micro-batches of a global
 * batch, one entry per MoE layer:
 *   - the running expert counts of global_aux_loss (semantics.md 2.1.3), reset after each
 *     global batch (as the reference's finalize-grads does);
 *   - the expert bias of aux-loss-free balancing (2.1.5, ExpertBias): every forward adds its
 *     final routing map's column sums to the counts; after each global batch the counts are
 *     summed over tp-dp-cp and the bias moves. The bias starts at 0; checkpoints keep it;
 *   - the beta of quantile balancing (2.1.9, QuantileBalancing): every training forward adds its
 *     beta_local; after each global batch beta moves to their mean over dp-cp. Checkpoints keep it.
 * Layers are visited in increasing order, the same on every member of a tp-dp-cp group (they
 * hold the same layers), so the members' allreduces pair up.
 */
import * as Effect from "effect/Effect"
import type { Group } from "../comm/Group.js"
import * as AuxLoss from "./AuxLoss.js"
import * as ExpertBias from "./ExpertBias.js"
import * as QuantileBalancing from "./QuantileBalancing.js"

/**
 * One rank's state, by layer.
 * @category models
 */
export interface MoeRunState {
  readonly global: Map<number, { counts: AuxLoss.GlobalCounts }>
  readonly bias: Map<number, ExpertBias.ExpertBias>
  readonly quantile: Map<number, QuantileBalancing.QuantileState>
  /**
   * The layers whose forward ran in this process: what a checkpoint takes from this rank. A resume
   * restores every layer's state on every rank; those of other stages stay as restored, stale.
   */
  readonly ran: Set<number>
}

/**
 * An empty state.
 * @category constructors
 */
export const make = (): MoeRunState => ({ global: new Map(), bias: new Map(), quantile: new Map(), ran: new Set() })

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
 * The expert bias of a layer now (zeros before its first update).
 * @category mapping
 */
export const expertBias = (state: MoeRunState, layer: number, numExperts: number): ReadonlyArray<number> => biasOf(state, layer, numExperts).bias

const biasOf = (state: MoeRunState, layer: number, numExperts: number): ExpertBias.ExpertBias => {
  const held = state.bias.get(layer)
  if (held !== undefined) return held
  const fresh = ExpertBias.withBias(new Array<number>(numExperts).fill(0))
  state.bias.set(layer, fresh)
  return fresh
}

/**
 * Adds a forward's tokens per expert (the final map's column sums) to the layer's bias counts.
 * @category combinators
 */
export const countTokens = (state: MoeRunState, layer: number, tokensPerExpert: ReadonlyArray<number>): void => {
  const held = biasOf(state, layer, tokensPerExpert.length)
  state.bias.set(layer, { bias: held.bias, counts: held.counts.map((c, e) => c + (tokensPerExpert[e] as number)) })
  state.ran.add(layer)
}

/**
 * The quantile-balancing beta of a layer now (zeros before its first update).
 * @category mapping
 */
export const quantileBeta = (state: MoeRunState, layer: number, numExperts: number): ReadonlyArray<number> =>
  (state.quantile.get(layer) ?? QuantileBalancing.initial(numExperts)).beta

/**
 * Adds a training forward's beta_local to the layer's sum for the global batch.
 * @category combinators
 */
export const addQuantileLocal = (state: MoeRunState, layer: number, local: ArrayLike<number>): void => {
  state.quantile.set(layer, QuantileBalancing.accumulate(state.quantile.get(layer) ?? QuantileBalancing.initial(local.length), local))
  state.ran.add(layer)
}

/**
 * After a global batch: every layer's global_aux counts start again from zero, every layer's
 * expert bias moves by `rate` from the counts summed over `tpDpCp`, and every layer's
 * quantile-balancing beta moves to its forwards' mean beta_local over `dpCp` (mixed by `ema`).
 * @category combinators
 */
export const endGlobalBatch = (state: MoeRunState, groups: { readonly tpDpCp: Group; readonly dpCp: Group }, rate: number, ema: number) =>
  Effect.gen(function* () {
    state.global.clear()
    for (const layer of [...state.bias.keys()].sort((a, b) => a - b)) {
      state.bias.set(layer, yield* ExpertBias.update(state.bias.get(layer) as ExpertBias.ExpertBias, groups.tpDpCp, rate))
    }
    for (const layer of [...state.quantile.keys()].sort((a, b) => a - b)) {
      state.quantile.set(layer, yield* QuantileBalancing.update(state.quantile.get(layer) as QuantileBalancing.QuantileState, groups.dpCp, ema))
    }
  })

/**
 * The expert bias of each MoE layer this rank ran (what a checkpoint keeps of the state: at a
 * step's end the global batch is over, so the running counts are empty), by layer.
 * @category mapping
 */
export const savedBiases = (state: MoeRunState): Record<string, ReadonlyArray<number>> => byLayer(state, state.bias, (b) => b.bias)

/**
 * Restores the expert biases a checkpoint kept (`savedBiases`), counts empty.
 * @category combinators
 */
export const restoreBiases = (state: MoeRunState, saved: Readonly<Record<string, ReadonlyArray<number>>>): void => {
  for (const [layer, bias] of Object.entries(saved)) state.bias.set(Number(layer), ExpertBias.withBias(bias))
}

/**
 * The quantile-balancing beta of each MoE layer this rank ran (what a checkpoint keeps: at a
 * step's end the global batch is over, so the sums are empty), by layer.
 * @category mapping
 */
export const savedQuantileBetas = (state: MoeRunState): Record<string, ReadonlyArray<number>> => byLayer(state, state.quantile, (q) => q.beta)

/** The values of the layers this rank ran (`ran`), by layer ascending. */
const byLayer = <A>(state: MoeRunState, held: ReadonlyMap<number, A>, values: (a: A) => ReadonlyArray<number>): Record<string, ReadonlyArray<number>> =>
  Object.fromEntries(
    [...held]
      .filter(([layer]) => state.ran.has(layer))
      .sort((a, b) => a[0] - b[0])
      .map(([layer, a]) => [String(layer), [...values(a)]]),
  )

/**
 * Restores the betas a checkpoint kept (`savedQuantileBetas`), sums empty.
 * @category combinators
 */
export const restoreQuantileBetas = (state: MoeRunState, saved: Readonly<Record<string, ReadonlyArray<number>>>): void => {
  for (const [layer, beta] of Object.entries(saved)) state.quantile.set(Number(layer), QuantileBalancing.withBeta(beta))
}

/**
 * A copy of `from`'s expert biases and quantile betas, every layer's, sums and counts empty (an
 * evaluation's state: it selects as training would and moves nothing of training's).
 * @category constructors
 */
export const copied = (from: MoeRunState): MoeRunState => {
  const to = make()
  for (const [layer, b] of from.bias) to.bias.set(layer, ExpertBias.withBias(b.bias))
  for (const [layer, q] of from.quantile) to.quantile.set(layer, QuantileBalancing.withBeta(q.beta))
  return to
}
