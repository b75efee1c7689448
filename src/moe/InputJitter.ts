/**
 * InputJitter: Megatron-Core's `moe_input_jitter_eps` (semantics.md 2.1.1): the router's input
 * multiplied elementwise by noise uniform in [1 - eps, 1 + eps] before the gating, in training (the
 * experts see the tokens as they are).
 *
 * Deterministic where the reference is not (it draws from the rank's RNG): the factors of a token's
 * row are a function of the token and the layer, the first H uniforms of the mulberry32 stream
 * (NormalStream.uniformAt) seeded by a hash of the token's place in the data stream (its
 * sequence's index x seq + its position) and the layer. So every mapping jitters a token alike
 * and a parallel run equals one rank's; a full-recompute replay draws the forward's factors.
 * Decision: evaluations do not jitter (the reference's router has no training switch; pleat's
 * evaluation measures the model as it is).
 */
import * as DType from "../tensor/DType.js"
import * as NormalStream from "../tensor/NormalStream.js"
import * as SeedHash from "../tensor/SeedHash.js"

/** The seed of a token's row: its place (two words) and the layer. */
const rowSeed = (token: number, layer: number): number => SeedHash.fnv1a([...SeedHash.wordsOf(token), layer])

/**
 * The factors of rows [rows, hidden] in `dtype`: row r's are those of token `tokens[r]` in layer
 * `layer`, each 1 - eps + 2 eps u with u uniform in (0, 1).
 * @category constructors
 */
export const factors = (tokens: ArrayLike<number>, layer: number, hidden: number, eps: number, dtype: DType.DType): DType.Storage => {
  const out = DType.allocate(dtype, tokens.length * hidden)
  for (let r = 0; r < tokens.length; r++) {
    const seed = rowSeed(tokens[r] as number, layer)
    for (let h = 0; h < hidden; h++) out[r * hidden + h] = 1 - eps + 2 * eps * NormalStream.uniformAt(seed, h + 1)
  }
  return out
}
