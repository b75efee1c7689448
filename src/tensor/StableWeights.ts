/**
 * StableWeights: parameter leaves whose storage does not change while a generation lasts, so the
 * native matmul keeps their packed panels for the generation's products instead of packing them
 * each time (cuda/src/kernels/packed_b_cache.h).
 *
 * A training step multiplies every weight by each micro-batch's activations, forward (x W) and
 * backward (g W^T); the optimizer writes the weight only after the step's last backward (and a
 * distributed optimizer's all-gather into it completes before the chunk's forward reads it). The
 * trainer takes a fresh generation for each rank's step and marks the leaves it makes of the
 * parameters with it (ChunkRun); a product whose B is such a leaf passes the generation to the
 * kernel. Generations are never reused in the process, so a weight written by the next step, or
 * memory freed and reused by another run, never meets panels packed before. The results are the
 * same bits either way (the panels are the bytes the product would pack).
 *
 * The mark is on the leaf tensor, not its storage: a leaf lives only for its step's tapes, while
 * the storage outlives it and is written between steps.
 */
import { addonIfBuilt, type PackedWeightsStats } from "../native/CpuAddon.js"
import type * as Tensor from "./Tensor.js"

const generations = new WeakMap<Tensor.Tensor, number>()

/**
 * A generation no one has had; 0 (nothing kept) when the addon predates the cache or
 * PLEAT_PACKED_WEIGHTS=0 turns it off (to rule it out: the results are the same bits).
 * @category constructors
 */
export const nextGeneration = (): number => (process.env.PLEAT_PACKED_WEIGHTS === "0" ? 0 : (addonIfBuilt()?.nextGeneration?.() ?? 0))

/**
 * What the cache holds and has done (undefined without it).
 * @category getters
 */
export const stats = (): PackedWeightsStats | undefined => addonIfBuilt()?.packedWeightsStats?.()

/**
 * Marks `leaf`: its storage stays unchanged while `generation` lasts (0: no mark).
 * @category mutations
 */
export const mark = (leaf: Tensor.Tensor, generation: number): Tensor.Tensor => {
  if (generation > 0) generations.set(leaf, generation)
  return leaf
}

/**
 * The generation under which `t`'s storage stays unchanged, if it was marked.
 * @category getters
 */
export const generationOf = (t: Tensor.Tensor): number | undefined => generations.get(t)

/**
 * The step of `generation` ended: its panels may be dropped when the cache needs room (several
 * ranks' steps share a process's cache; only ended steps' panels make way).
 * @category mutations
 */
export const retire = (generation: number): void => {
  if (generation > 0) addonIfBuilt()?.retireGeneration?.(generation)
}

/**
 * Drops every kept panel (at the end of a run; a product still reading some keeps them alive).
 * @category mutations
 */
export const clear = (): void => addonIfBuilt()?.clearPackedWeights?.()
