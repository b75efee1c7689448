/**
 * ForcedBalance: Megatron-Core's benchmark-only `moe_router_force_load_balancing` (semantics.md
 * 2.1.1): the router's logits are replaced by standard-normal noise, so every expert receives
 * about as many tokens as any other whatever the weights, and the gradient passes straight
 * through to the real logits (a straight-through estimator: the router weights still train). For
 * timing a layout at its balanced steady state from the first step: at initialisation a router
 * may send every token to one expert (the realistic bench shape does), which leaves expert
 * parallelism one rank's work at a time.
 *
 * Deterministic where the reference is not: the reference draws the noise from the
 * expert-parallel RNG (different per rank and call). Here row r's noise is a function of that
 * row of the logits, bit for bit: a hash of its values seeds the row's normals (NormalStream's
 * stream, mulberry32 and Box-Muller), so the same tokens give the same noise on every run, a recomputed forward gives
 * the forward's noise, and rows that differ in any bit get independent noise. Mappings whose
 * logits agree bit for bit route alike; under tensor parallelism the logits may differ in their
 * last bits between mappings, and then so does the routing (as in the reference, a benchmark
 * setting: not for training a model to use).
 */
import * as Autograd from "../tensor/Autograd.js"
import * as DType from "../tensor/DType.js"
import * as NormalStream from "../tensor/NormalStream.js"
import * as SeedHash from "../tensor/SeedHash.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as TensorError from "../tensor/TensorError.js"

/** One float32 and its bits, for `hashRow` (one pair for the module, not one per row). */
const bits = new Float32Array(1)
const word = new Uint32Array(bits.buffer)

/** 32-bit FNV-1a over the float32 bits of `values[from .. from + count)`. */
const hashRow = (values: DType.Storage, from: number, count: number): number => {
  let h = 0x811c9dc5
  for (let i = from; i < from + count; i++) {
    bits[0] = values[i] as number
    h = Math.imul(h ^ (word[0] as number), 0x01000193) >>> 0
  }
  return h
}

/** Writes the noise of logits [T, E] (`noiseOf`) into `out`, rounded once to its dtype. */
const noiseInto = (values: DType.Storage, tokens: number, experts: number, out: DType.Storage): void => {
  for (let r = 0; r < tokens; r++) NormalStream.normalsInto(hashRow(values, r * experts, experts), 0, experts, 1, out, r * experts)
}

/**
 * The noise that replaces logits [T, E]: row r holds the first E elements of the normal stream
 * (NormalStream, the parameters' generator) seeded by the hash of the logits' row r, in float64.
 * @category constructors
 */
export const noiseOf = (values: DType.Storage, tokens: number, experts: number): Float64Array => {
  const out = new Float64Array(tokens * experts)
  noiseInto(values, tokens, experts, out)
  return out
}

/**
 * Logits [T, E] replaced by their noise (`noiseOf`), differentiable: the gradient reaches the
 * logits unchanged (straight through).
 * @category combinators
 */
export const forceLoadBalancing = (logits: Tensor.Tensor): Tensor.Tensor => {
  if (logits.rank !== 2) throw TensorError.shape("forceLoadBalancing", `logits must be [T, E], got ${TensorError.formatShape(logits.shape)}`)
  const [tokens, experts] = logits.shape as readonly [number, number]
  const out = DType.allocate(logits.dtype, tokens * experts)
  noiseInto(logits.readHost(), tokens, experts, out)
  return Autograd.hostResult("forceLoadBalancing", [logits], out, logits.shape, (g) => [g.alias({ shape: logits.shape })])
}

/** The seed of a layer's bias for a call (-1: none). */
const biasSeed = (layer: number, call: number): number => SeedHash.fnv1a([layer, ...SeedHash.wordsOf(call)])

/**
 * The per-expert bias of Megatron-Core's benchmark-only `moe_router_force_biased = std`
 * (semantics.md 2.1.1): E values of N(0, |std|), the same on every rank: with std < 0 drawn once
 * for the layer, with std > 0 drawn for each forward, here for each micro-batch (`call`, its first
 * sequence's index in the data stream: every rank and mapping draws a micro-batch's alike, and a
 * recompute its forward's). NormalStream's normals from a hash of the layer and the call.
 * @category constructors
 */
export const biasOf = (std: number, layer: number, experts: number, call: number | undefined): Float64Array => {
  const out = new Float64Array(experts)
  NormalStream.normalsInto(biasSeed(layer, std < 0 || call === undefined ? -1 : call), 0, experts, Math.abs(std), out, 0)
  return out
}

/**
 * Logits [T, E] replaced by their noise (`noiseOf`) plus `bias` [E] on every row (Megatron-Core's
 * force_biased: skewed loads for benchmarks), differentiable straight through as
 * `forceLoadBalancing`.
 * @category combinators
 */
export const forceBiased = (logits: Tensor.Tensor, bias: ArrayLike<number>): Tensor.Tensor => {
  if (logits.rank !== 2) throw TensorError.shape("forceBiased", `logits must be [T, E], got ${TensorError.formatShape(logits.shape)}`)
  const [tokens, experts] = logits.shape as readonly [number, number]
  if (bias.length !== experts) throw TensorError.shape("forceBiased", `${bias.length} biases for ${experts} experts`)
  const noise = noiseOf(logits.readHost(), tokens, experts)
  const out = DType.allocate(logits.dtype, tokens * experts)
  for (let i = 0; i < tokens * experts; i++) out[i] = (noise[i] as number) + (bias[i % experts] as number)
  return Autograd.hostResult("forceBiased", [logits], out, logits.shape, (g) => [g.alias({ shape: logits.shape })])
}
