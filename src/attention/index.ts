/**
 * pleat/attention: causal grouped-query self-attention and multi-latent attention under tensor
 * and context parallelism, and the vocabulary-parallel output layer and loss.
 */
export * as ContextParallel from "./ContextParallel.js"
export * as LatentAttention from "./LatentAttention.js"
export * as SelfAttention from "./SelfAttention.js"
export * as VocabParallel from "./VocabParallel.js"
