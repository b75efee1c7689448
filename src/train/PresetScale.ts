/**
 * PresetScale: a model preset shrunk by a factor to run on a CPU (`pleat train --model NAME
 * --scale N`), keeping its experts, top-k, MoE placement and router.
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import type * as ModelConfig from "./ModelConfig.js"

/** Widths are rounded up to multiples of this (it covers tp, etp and the default mapping's 2). */
const widthQuantum = 8
/** The smallest head dimension a scaled model keeps (query heads are cut to keep it). */
const minHeadDim = 8
/** The shortest scaled sequence, and its quantum (a multiple of 2*cp*tp for cp, tp up to 2, 4). */
const seqQuantum = 16

const roundUp = (x: number, quantum: number): number => Math.max(quantum, Math.ceil(x / quantum) * quantum)

/** Query heads of a scaled model: at most the original, even (tp 2), dividing hidden, head dim >= minHeadDim. */
const scaledHeads = (heads: number, hidden: number): number => {
  for (let h = Math.min(heads, Math.floor(hidden / minHeadDim)); h >= 2; h--) if (h % 2 === 0 && hidden % h === 0) return h
  return 2
}

/** KV heads of a scaled model: the original ratio heads/kvHeads where it can be kept, at least 2 (tp 2), even, dividing heads. */
const scaledKvHeads = (kvHeads: number, heads: number, scaledHeadCount: number): number => {
  for (let k = Math.max(2, Math.floor((kvHeads * scaledHeadCount) / heads)); k >= 2; k--) if (k % 2 === 0 && scaledHeadCount % k === 0) return k
  return 2
}

/**
 * Shrinks a model by `factor` for a CPU run, keeping experts, top-k, moeEvery and the router;
 * leading dense layers (denseFirst) become ceil(denseFirst / factor), below the new layer count;
 * a head width of its own (headDim) is divided too (even, at least 8), and a sliding window (at
 * least 2 tokens) as seq is.
 * Factor 1 is the model itself. Otherwise: hidden, ffn, moeFfn, the shared-expert width and
 * vocab are divided by the factor and rounded up to a multiple of 8 (hidden at least 16); layers become
 * ceil(layers / factor) rounded up to an even count (at least 2, so the default pp 2 splits
 * them); seq is divided by the factor and rounded up to a multiple of 16 (at least 16); query
 * heads are cut to the largest even count that divides the new hidden with a head dimension of
 * at least 8, and KV heads keep the original query/KV ratio where they can (at least 2, even,
 * dividing the heads). So every preset scaled by 64 fits the default mapping (tp 2, cp 2, pp 2,
 * ep 2, etp 1); other mappings may need --heads, --kv-heads or --layers.
 * @category constructors
 */
export const scale = (m: ModelConfig.ModelConfig, factor: number): ModelConfig.ModelConfig => {
  if (factor === 1) return m
  // At least 2 heads (tp 2) of dimension minHeadDim.
  const hidden = Math.max(2 * minHeadDim, roundUp(m.hidden / factor, widthQuantum))
  const heads = scaledHeads(m.heads, hidden)
  const layers = 2 * Math.ceil(Math.ceil(m.layers / factor) / 2)
  // once a job: a preset scaled
  return {
    ...m,
    vocab: roundUp(m.vocab / factor, widthQuantum),
    hidden,
    layers,
    heads,
    kvHeads: scaledKvHeads(m.kvHeads, m.heads, heads),
    ffn: roundUp(m.ffn / factor, widthQuantum),
    moeFfn: roundUp(m.moeFfn / factor, widthQuantum),
    seq: roundUp(m.seq / factor, seqQuantum),
    ...(m.sharedExpertFfn === undefined ? {} : { sharedExpertFfn: roundUp(m.sharedExpertFfn / factor, widthQuantum) }),
    ...(m.denseFirst === undefined ? {} : { denseFirst: Math.min(Math.ceil(m.denseFirst / factor), layers - 1) }),
    ...(m.headDim === undefined ? {} : { headDim: Math.max(minHeadDim, 2 * Math.ceil(m.headDim / factor / 2)) }),
    ...(m.slidingWindow === undefined ? {} : { slidingWindow: Math.max(2, Math.ceil(m.slidingWindow / factor)) }),
    ...(m.mla === undefined ? {} : { mla: scaledLatent(m.mla, factor) }),
  }
}

/** Multi-latent attention's widths divided by `factor`: latents as widths, head widths even and at least 8 (the rotary part 4). */
const scaledLatent = (s: LatentAttention.LatentSizes, factor: number): LatentAttention.LatentSizes => {
  const even = (x: number, least: number) => Math.max(least, 2 * Math.ceil(x / factor / 2))
  return {
    qLoraRank: s.qLoraRank === 0 ? 0 : roundUp(s.qLoraRank / factor, widthQuantum),
    kvLoraRank: roundUp(s.kvLoraRank / factor, widthQuantum),
    qkHeadDim: even(s.qkHeadDim, minHeadDim),
    qkPosEmbHeadDim: even(s.qkPosEmbHeadDim, minHeadDim / 2),
    vHeadDim: even(s.vHeadDim, minHeadDim),
  }
}
