/**
 * RopeScaling: RoPE's frequencies, plain or YaRN-scaled (Peng et al. 2023, "YaRN: efficient
 * context window extension"), as DeepSeek-V3 and Qwen3 extend their context.
 *
 * Plain: pair i of a D-wide rotary part turns at theta^(-2i/D) per position.
 * YaRN with factor s, the pretraining length L (original max positions), beta_fast and
 * beta_slow: a pair that turns more than beta_fast times over L keeps its frequency
 * (extrapolation), one that turns fewer than beta_slow times is divided by s (interpolation),
 * and the pairs between ramp linearly from one to the other. With
 *   dim(r) = D ln(L / (2 pi r)) / (2 ln theta)       (the pair index that turns r times over L)
 *   low = max(floor(dim(beta_fast)), 0), high = min(ceil(dim(beta_slow)), D - 1)
 *   ramp_i = clamp((i - low) / (high - low), 0, 1)    (high = low + 0.001 where they meet)
 *   inv_i = theta^(-2i/D) (1 - ramp_i) + theta^(-2i/D) / s ramp_i
 * and cos and sin are multiplied by the attention factor
 *   m(s, mscale) / m(s, mscaleAllDim) when both are non-zero, else m(s, 1),
 *   m(s, k) = 1 + 0.1 k ln s for s > 1, else 1
 * (so q . k grows by its square). With `truncate` false (transformers' truncate, Megatron's
 * --no-yarn-correction-range-round-to-int; GPT-OSS's), low and high are dim(beta_fast) and
 * dim(beta_slow) unrounded, still clamped to [0, D - 1]. These are transformers'
 * `_compute_yarn_parameters` and Megatron's YaRN; DeepSeek-V3's multi-latent attention also
 * multiplies its softmax scale by m(s, mscaleAllDim)^2 (`softmaxScaleFactor`).
 *
 * Llama 3's (Llama 3.1 to 4; transformers' `_compute_llama3_parameters`, Megatron's
 * --use-rope-scaling) with factor s, the pretraining length L and the low and high frequency
 * factors lo and hi: a pair whose wavelength w = 2 pi / inv_i is shorter than L / hi keeps its
 * frequency, one longer than L / lo is divided by s, and the pairs between blend the two by
 * smooth = (L / w - lo) / (hi - lo): inv_i ((1 - smooth) / s + smooth). No attention factor.
 *
 * Linear (position interpolation, Chen et al. 2023; transformers' rope_type "linear", Megatron's
 * --rotary-seq-len-interpolation-factor) with factor s: every position divided by s, so every pair
 * turns at inv_i / s. No attention factor.
 */

/**
 * YaRN's setting (transformers' rope_scaling keys: factor, original_max_position_embeddings,
 * beta_fast, beta_slow, mscale, mscale_all_dim).
 * @category models
 */
export interface Yarn {
  readonly factor: number
  readonly originalMaxPositions: number
  readonly betaFast: number
  readonly betaSlow: number
  readonly mscale: number
  readonly mscaleAllDim: number
  /** Whether the ramp's ends are rounded out to whole pairs (absent: true, transformers' default). */
  readonly truncate?: boolean | undefined
}

/**
 * Llama 3's setting (transformers' rope_scaling keys: factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings).
 * @category models
 */
export interface Llama3 {
  readonly type: "llama3"
  readonly factor: number
  readonly lowFreqFactor: number
  readonly highFreqFactor: number
  readonly originalMaxPositions: number
}

/**
 * Linear scaling's setting (transformers' rope_scaling key: factor).
 * @category models
 */
export interface Linear {
  readonly type: "linear"
  readonly factor: number
}

/**
 * RoPE's scaling: YaRN's, Llama 3's or linear.
 * @category models
 */
export type Scaling = Yarn | Llama3 | Linear

/**
 * Whether a scaling is Llama 3's.
 * @category guards
 */
export const isLlama3 = (s: Scaling): s is Llama3 => "type" in s && s.type === "llama3"

/**
 * Whether a scaling is linear (position interpolation).
 * @category guards
 */
export const isLinear = (s: Scaling): s is Linear => "type" in s && s.type === "linear"

/**
 * Whether a scaling is YaRN's (the one without a type).
 * @category guards
 */
export const isYarn = (s: Scaling): s is Yarn => !("type" in s)

/**
 * Llama 3.1's setting, Megatron-LM's --use-rope-scaling: factor 8, frequency factors 1 and 4, 8192
 * positions.
 * @category constants
 */
export const llama3Defaults = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } as const

/**
 * The factor on cos and sin of any scaling (1 for none and for Llama 3's).
 * @category mapping
 */
export const ropeFactorOf = (s: Scaling | undefined): number => (s !== undefined && isYarn(s) ? attentionFactor(s) : 1)

/**
 * The factor on multi-latent attention's softmax scale of any scaling (YaRN's, else 1).
 * @category mapping
 */
export const softmaxFactorOf = (s: Scaling | undefined): number => (s !== undefined && isYarn(s) ? softmaxScaleFactor(s) : 1)

/**
 * A key naming a scaling's every setting ("" for none), for caches of its tables.
 * @category mapping
 */
export const keyOf = (s: Scaling | undefined): string =>
  s === undefined
    ? ""
    : isLlama3(s)
      ? `llama3,${s.factor},${s.lowFreqFactor},${s.highFreqFactor},${s.originalMaxPositions}`
      : isLinear(s)
        ? `linear,${s.factor}`
        : `yarn,${s.factor},${s.originalMaxPositions},${s.betaFast},${s.betaSlow},${s.mscale},${s.mscaleAllDim},${s.truncate !== false}`

/**
 * YaRN's defaults where a model gives only the factor and the original length (transformers':
 * beta_fast 32, beta_slow 1; mscale 1 and mscale_all_dim 0 give the plain attention factor).
 * @category constants
 */
export const yarnDefaults = { betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 0 } as const

/** m(s, k) = 1 + 0.1 k ln s above s = 1. */
const magnitude = (s: number, k: number): number => (s <= 1 ? 1 : 0.1 * k * Math.log(s) + 1)

/**
 * The factor on cos and sin.
 * @category mapping
 */
export const attentionFactor = (y: Yarn): number =>
  y.mscale !== 0 && y.mscaleAllDim !== 0 ? magnitude(y.factor, y.mscale) / magnitude(y.factor, y.mscaleAllDim) : magnitude(y.factor, 1)

/**
 * The factor on the softmax scale of multi-latent attention (DeepSeek-V3): m(s, mscaleAllDim)^2
 * where mscaleAllDim is non-zero, else 1.
 * @category mapping
 */
export const softmaxScaleFactor = (y: Yarn): number => (y.mscaleAllDim === 0 ? 1 : magnitude(y.factor, y.mscaleAllDim) ** 2)

/**
 * The inverse frequency of each of the D/2 pairs of a D-wide rotary part.
 * @category mapping
 */
export const inverseFrequencies = (d: number, theta: number, scaling?: Scaling): Float64Array => {
  const half = d / 2
  const out = new Float64Array(half)
  for (let i = 0; i < half; i++) out[i] = theta ** ((-2 * i) / d)
  if (scaling === undefined) return out
  if (isLlama3(scaling)) return llama3Scaled(out, scaling)
  if (isLinear(scaling)) return out.map((f) => f / scaling.factor)
  const yarn = scaling
  const turnsAt = (rotations: number) => (d * Math.log(yarn.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta))
  const round = yarn.truncate !== false
  const low = Math.max(round ? Math.floor(turnsAt(yarn.betaFast)) : turnsAt(yarn.betaFast), 0)
  const high = Math.min(round ? Math.ceil(turnsAt(yarn.betaSlow)) : turnsAt(yarn.betaSlow), d - 1)
  const span = low === high ? 0.001 : high - low
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / span))
    const f = out[i] as number
    out[i] = f * (1 - ramp) + (f / yarn.factor) * ramp
  }
  return out
}

/** Llama 3's frequencies from the plain ones (in place). */
const llama3Scaled = (inv: Float64Array, s: Llama3): Float64Array => {
  const low = s.originalMaxPositions / s.lowFreqFactor
  const high = s.originalMaxPositions / s.highFreqFactor
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i] as number
    const wavelength = (2 * Math.PI) / f
    if (wavelength < high) continue
    if (wavelength > low) inv[i] = f / s.factor
    else {
      const smooth = (s.originalMaxPositions / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
      inv[i] = (1 - smooth) * (f / s.factor) + smooth * f
    }
  }
  return inv
}
