/**
 * Calibration: every constant of the planner's cost model, with where it comes from.
 *
 * Three kinds: hardware facts (the cluster's datasheet numbers live in Cluster), fractions of
 * them that real kernels and NCCL reach on H100s (public measurements, named below), and the
 * few constants fitted to the paper's Table 3 (shared/reference/paper.md 4.2: MCore and
 * MCore-with-folding rows, GBS 256, seq 4096, DGX H100), marked "fitted". The fitted ones were
 * chosen once, by hand, to bring every Table 3 row within 15% of the paper's MFU while keeping
 * the measured fractions physical; properties/plan/PaperTables.test.ts checks the result.
 */

/**
 * The constants, by the term of the cost model they feed.
 * @category configuration
 */
export const calibration = {
  /** Best fraction of the bf16 dense peak a large GEMM reaches on an H100 (cuBLAS reaches
   * 700-760 of 989.5 TFLOP/s at 8192^3; Megatron's largest runs report 0.72-0.75). */
  gemmPeakFraction: 0.76,
  /** A GEMM dimension of this size loses half of the best fraction (tile quantisation and
   * too few tiles: efficiency ~ d/(d+half) per dimension). Fitted within the 64-256 that
   * cuBLAS sweeps show. */
  gemmHalfDimension: 96,
  /** The grouped expert GEMM against a dense one of the same shape (variable group sizes,
   * padding to tiles). Fitted (0.85-0.95 in TransformerEngine's grouped GEMM reports). */
  groupedGemmFraction: 0.9,
  /** The fp8 GEMM's fraction of the fp8 peak against bf16's fraction of the bf16 peak: fp8
   * runs reach 1.26-1.30x of bf16 end to end (paper Table 2). */
  fp8GemmRelative: 0.75,
  /** Causal flash attention (forward + backward) as a fraction of the bf16 peak
   * (FlashAttention-2/cuDNN on H100 with head dim 128: 0.45-0.6). */
  attentionPeakFraction: 0.5,
  /** A query/key chunk of this many tokens halves attention's efficiency. Causal context
   * parallelism splits the sequence into 2 cp chunks (load balance), so each kernel sees
   * seq/(2 cp) tokens: shorter chunks launch more, smaller tiles (fitted). */
  attentionHalfLength: 1024,
  /** Fixed time of one context-parallel ring step (a kernel launch and a send/receive pair):
   * a layer runs cp-1 steps forward and 2(cp-1) backward (fitted, the order of NCCL p2p latency). */
  cpStepSeconds: 100e-6,
  /** Flash attention's backward against its forward in FLOPs (it recomputes the scores). */
  attentionBackwardRatio: 2.5,
  /** Fraction of HBM bandwidth that elementwise kernels (norms, SwiGLU, RoPE, permute) reach. */
  hbmFraction: 0.7,
  /** Bytes per token and per hidden unit that a layer's elementwise kernels move in the forward
   * (norm, residual, RoPE, attention I/O): fitted, near the count of those kernels' reads and writes. */
  attentionElementwiseBytes: 24,
  /** Fixed time of one transformer layer for one micro-batch, forward and backward: kernel
   * launches and small ops (fitted; Megatron's ~60-100 kernels a layer at ~4 us each). */
  layerFixedSeconds: 0.1e-3,
  /** The MoE layer's extra fixed time per micro-batch, forward and backward: router, top-k,
   * the dispatcher's host synchronisation for split sizes, permutation bookkeeping (fitted). */
  moeFixedSeconds: 0.3e-3,
  /** Fraction of one direction of NVLink that NCCL's ring all-gather / reduce-scatter reaches
   * (nccl-tests bus bandwidth ~360 of 450 GB/s on H100 SXM). */
  nvlinkRingFraction: 0.8,
  /** The same for NCCL's all-to-all inside a node (nccl-tests alltoall ~ 0.6-0.7 of the ring:
   * 0.6 x 0.8; with 0.55 the Qwen2-57B ranking of Table 1 put the paper's EP 4 below EP 8). */
  nvlinkAllToAllFraction: 0.48,
  /** Fraction of the NICs' line rate that NCCL reaches across nodes (ring), and for all-to-all,
   * whose many small flows and congestion keep it lower (fitted inside the 0.4-0.6 reported for
   * cross-node expert parallelism on 400 Gb/s InfiniBand). */
  networkRingFraction: 0.85,
  networkAllToAllFraction: 0.65,
  /** Fixed cost of one collective launch and handshake (NCCL small-message latency). */
  collectiveLatencySeconds: 25e-6,
  /** Fraction of tensor-parallel all-gather / reduce-scatter time not hidden behind GEMMs
   * (Megatron overlaps part of it with --tp-comm-overlap; fitted). */
  tpExposedFraction: 0.6,
  /** Fraction of the context-parallel ring hidden behind attention compute. */
  cpOverlapFraction: 0.9,
  /** Fraction of pipeline send/receive time not hidden (Megatron overlaps p2p with compute). */
  p2pExposedFraction: 0.3,
  /** Fraction of the time the distributed optimizer's gradient reduce-scatter (parameter
   * all-gather) can hide behind: the last (first) micro-batch's backward (forward) through the
   * stage and half the bubble, the cool-down (warm-up) when the rank waits
   * (--overlap-grad-reduce / --overlap-param-gather). Half: NCCL's kernels take SMs (a channel
   * each) and HBM bandwidth from the compute they overlap, so hidden traffic still slows it.
   * Fitted on Table 1 with Table 3 (0.8 put Qwen2-57B's paper mapping 7th, 0.5 puts it 2nd;
   * every Table 3 row stays within 15%). */
  dpOverlapFraction: 0.5,
  /** Bytes of optimizer traffic per parameter shard element in the step (read fp32 grad,
   * master, m, v; write master, m, v; write the bf16 copy). */
  optimizerBytesPerParameter: 30,
  /** Memory: bytes per parameter for bf16 weights, fp32 gradients (Megatron's main_grad) and
   * the distributed optimizer's fp32 master, Adam m and v (12, sharded over data parallelism). */
  weightBytes: 2,
  gradientBytes: 4,
  optimizerBytes: 12,
  /** Memory: activation bytes per token and hidden unit of an attention block with sequence
   * parallelism and flash attention (Korthikanti et al.: 10 + the K/V share, no s^2 term). */
  attentionActivationBytes: 10,
  /** Memory: the margin on expert activations for dropless imbalance: the busiest expert rank
   * holds this much more than the mean (capacity factor ~1.2 as Megatron's dropless runs see). */
  droplessMargin: 1.2,
  /** Memory: what CUDA, NCCL and the caching allocator's fragmentation take from each GPU, GB. */
  reservedGB: 5,
} as const
