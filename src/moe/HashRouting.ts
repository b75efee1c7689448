/**
 * HashRouting: DeepSeek-V4's hash-routed MoE layers (Megatron-Core's --moe-n-hash-layers): each
 * token goes to experts its id picks from a fixed table, tid2eid[id] = [(id + k) mod E for k <
 * K] (Megatron-Core's round-robin table for training from scratch: K different experts when K
 * <= E, the vocabulary spread evenly over them), not to the router's top-k. The router still
 * scores every expert: the probs are its scores at the table's experts (Router's `hashed` mode),
 * so it learns; dropping, the dispatch and the aux losses go on as usual (the aux losses count
 * the router's own top-k, as Megatron-Core's do).
 */

/**
 * The table's experts of each token, [ids.length * K], in the table's order.
 * @category mapping
 */
export const experts = (ids: ArrayLike<number>, numExperts: number, topk: number): Int32Array => {
  const out = new Int32Array(ids.length * topk)
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t] as number
    for (let k = 0; k < topk; k++) out[t * topk + k] = (id + k) % numExperts
  }
  return out
}
