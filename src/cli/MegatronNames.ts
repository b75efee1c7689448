/**
 * MegatronNames: Megatron-LM's names for the settings of `pleat train`, so that a Megatron-LM
 * user's argument list (its MODEL_ARGS, MOE_ARGS, TRAINING_ARGS and parallel sizes) runs as
 * written. Four kinds, each a table here; MegatronArgs applies them.
 *
 * - `renamed`: the same setting under another name, taking the same values (`--num-layers` is
 *   `--layers`). A problem with its value names the flag as typed.
 * - `noEffect`: switches that choose how Megatron-LM computes, not what (fusions, overlap,
 *   kernel choices), or that state what pleat always does (`--swiglu`, `--sequence-parallel`):
 *   accepted, and said to take no effect.
 * - `valued`: settings pleat has one value of (RMSNorm, RoPE, no dropout, an fp32 router):
 *   that value is accepted, any other refused naming it.
 * - `unsupported`: Megatron-LM settings with no pleat equivalent: refused with the fix.
 *
 * Compound translations (`--bf16`, the load-balancing type and its coefficients, `--window-size`,
 * `--load`, the recompute settings) are MegatronArgs'. Megatron's names of settings pleat shares
 * by name (`--lr`, `--seed`, `--moe-layer-freq`, `--q-lora-rank`, ...) need nothing here.
 */

/**
 * Megatron-LM's name of each pleat setting it names otherwise: the same meaning and values.
 * @category configuration
 */
export const renamed: Readonly<Record<string, string>> = {
  "num-layers": "layers",
  "hidden-size": "hidden",
  "num-attention-heads": "heads",
  "num-query-groups": "kv-heads",
  "kv-channels": "head-dim",
  "ffn-hidden-size": "ffn",
  "moe-ffn-hidden-size": "moe-ffn",
  "num-experts": "experts",
  "moe-router-topk": "topk",
  "seq-length": "seq",
  "tensor-model-parallel-size": "tp",
  "context-parallel-size": "cp",
  "pipeline-model-parallel-size": "pp",
  "expert-model-parallel-size": "ep",
  "expert-tensor-parallel-size": "etp",
  "num-virtual-stages-per-pipeline-rank": "vpp",
  "decoder-first-pipeline-num-layers": "first-stage-layers",
  "decoder-last-pipeline-num-layers": "last-stage-layers",
  "pipeline-model-parallel-layout": "pipeline-layout",
  "micro-batch-size": "micro-batch",
  "global-batch-size": "global-batch",
  "train-iters": "steps",
  "rotary-base": "rope-theta",
  "norm-epsilon": "norm-eps",
  "untie-embeddings-and-output-weights": "untie-embeddings",
  "add-qkv-bias": "qkv-bias",
  "qk-layernorm": "qk-norm",
  "yarn-original-max-position-embeddings": "original-max-position-embeddings",
  "yarn-beta-fast": "beta-fast",
  "yarn-beta-slow": "beta-slow",
  "moe-shared-expert-intermediate-size": "shared-expert-ffn",
  "moe-shared-expert-gate": "shared-expert-gate",
  "moe-router-score-function": "score-function",
  "moe-router-pre-softmax": "pre-softmax",
  "moe-router-num-groups": "num-groups",
  "moe-router-group-topk": "group-topk",
  "moe-router-topk-scaling-factor": "scaling-factor",
  "moe-z-loss-coeff": "z-loss-coeff",
  "moe-token-dispatcher-type": "dispatcher",
  "moe-expert-capacity-factor": "capacity-factor",
  "moe-token-drop-policy": "drop-policy",
  "moe-pad-expert-input-to-capacity": "pad-to-capacity",
  "moe-router-enable-expert-bias": "expert-bias",
  "moe-router-bias-update-rate": "bias-update-rate",
  "moe-router-force-load-balancing": "force-load-balancing",
  "moe-router-quantile-balancing-ema": "quantile-balancing-ema",
  "moe-input-jitter-eps": "input-jitter-eps",
  "moe-n-hash-layers": "hash-layers",
  "moe-router-force-biased": "force-biased",
  "rope-scaling-factor": "rotary-scaling-factor",
  "use-distributed-optimizer": "distributed-optimizer",
  "num-distributed-optimizer-instances": "distributed-optimizer-instances",
  "lr-warmup-iters": "warmup-steps",
  "lr-decay-iters": "lr-decay-steps",
  "lr-wsd-decay-iters": "lr-wsd-decay-steps",
  "recompute-granularity": "recompute",
  "save-interval": "save-every",
  "eval-interval": "eval-every",
  "eval-iters": "eval-batches",
}

/**
 * Megatron-LM switches that take no value and change nothing in pleat, each with why.
 * @category configuration
 */
export const noEffect: Readonly<Record<string, string>> = {
  "use-mcore-models": "pleat has one model implementation",
  swiglu: "pleat's MLPs and experts are SwiGLU",
  "group-query-attention": "pleat takes --num-query-groups as the key/value heads",
  "no-position-embedding": "pleat has no learned position table (RoPE)",
  "sequence-parallel": "pleat shards the rows over tp wherever tp > 1",
  "moe-grouped-gemm": "pleat runs each rank's experts in one grouped native call",
  "moe-permute-fusion": "pleat's permute is one native pass",
  "moe-use-legacy-grouped-gemm": "pleat runs each rank's experts in one grouped native call",
  "moe-router-fusion": "a kernel choice",
  "moe-per-layer-logging": "pleat's step lines carry each MoE layer's losses and EP overload",
  "use-flash-attn": "pleat's attention kernel is its own",
  "no-masked-softmax-fusion": "a kernel choice",
  "no-bias-dropout-fusion": "a kernel choice",
  "no-bias-swiglu-fusion": "a kernel choice",
  "no-rope-fusion": "a kernel choice",
  "no-gradient-accumulation-fusion": "a kernel choice",
  "cross-entropy-loss-fusion": "a kernel choice",
  "attention-softmax-in-fp32": "pleat's softmax accumulates in fp32",
  "accumulate-allreduce-grads-in-fp32": "pleat reduces gradients in fp32",
  "overlap-grad-reduce": "a scheduling choice",
  "overlap-param-gather": "a scheduling choice",
  "moe-shared-expert-overlap": "a scheduling choice",
  "overlap-moe-expert-parallel-comm": "a scheduling choice",
  "delay-wgrad-compute": "a scheduling choice",
  "moe-enable-deepep": "DeepEP is a GPU kernel library; pleat's all-to-all dispatcher has the flex dispatcher's contract",
  "manual-gc": "a Python setting",
  "log-throughput": "pleat's summaries report tokens/s",
  "no-load-rng": "pleat's data order and weights follow --seed and the step",
  "log-timers-to-tensorboard": "a logging choice",
  "log-validation-ppl-to-tensorboard": "a logging choice",
  "log-memory-to-tensorboard": "a logging choice",
  "log-num-zeros-in-grad": "a logging choice",
  "log-params-norm": "a logging choice",
  "log-world-size-to-tensorboard": "a logging choice",
  "no-create-attention-mask-in-dataloader": "pleat builds its masks from the positions",
  "no-mmap-bin-files": "pleat reads each window with one positioned read",
  "auto-detect-ckpt-format": "pleat reads its own checkpoints",
  "mock-data": "pleat's default data is its synthetic language",
  "use-rotary-position-embeddings": "pleat's positions are RoPE",
  "apply-rope-fusion": "a kernel choice",
  "bias-swiglu-fusion": "a kernel choice",
  "no-persist-layer-norm": "a kernel choice",
  "use-precision-aware-optimizer": "pleat's AdamW keeps fp32 moments and master weights",
  "no-save-optim": "pleat's checkpoints keep the AdamW state, so a resume continues the run",
  "use-checkpoint-opt_param-scheduler": "pleat's resume continues the learning-rate schedule from the checkpoint's step",
  "check-for-nan-in-loss-and-grad": "pleat stops on a non-finite loss or gradient, naming the rank and step",
  "no-check-for-nan-in-loss-and-grad": "pleat always stops on a non-finite loss or gradient",
  "use-cpu-initialization": "pleat initializes its weights on the CPU",
  "ddp-average-in-collective": "a scheduling choice",
  "async-save": "pleat's ranks write their checkpoint shards as they reach the step",
  "te-rng-tracker": "a Transformer Engine setting",
  "enable-cuda-graph": "CUDA graphs are a GPU runtime choice",
  profile: "pleat writes Perfetto traces with --trace FILE (--trace-steps FIRST:LAST)",
  "use-pytorch-profiler": "pleat writes Perfetto traces with --trace FILE (--trace-steps FIRST:LAST)",
  "record-memory-history": "pleat's step lines carry each rank's memory",
  "log-loss-scale-to-tensorboard": "a logging choice",
}

/**
 * Megatron-LM settings with a value where pleat has one choice: the values accepted (as typed,
 * compared as numbers where numeric; any value where none are listed) and what pleat does.
 * @category configuration
 */
export const valued: Readonly<Record<string, { readonly accepts?: ReadonlyArray<string>; readonly pleat: string; readonly numeric?: true }>> = {
  normalization: { accepts: ["RMSNorm"], pleat: "pleat's norms are RMSNorm" },
  "attention-dropout": { accepts: ["0"], pleat: "pleat trains without dropout", numeric: true },
  "hidden-dropout": { accepts: ["0"], pleat: "pleat trains without dropout", numeric: true },
  "moe-router-dtype": { accepts: ["fp32"], pleat: "pleat's router and its losses run in fp32" },
  "transformer-impl": { accepts: ["local", "transformer_engine"], pleat: "pleat's layers are its own" },
  "log-interval": { pleat: "pleat reports every step" },
  "distributed-timeout-minutes": { pleat: "pleat's collectives fail fast on a mismatch" },
  "max-position-embeddings": { pleat: "RoPE has no position table" },
  "tensorboard-dir": { pleat: "pleat writes JSON lines (--log json) and Perfetto traces (--trace FILE), not TensorBoard's files" },
  "tensorboard-log-interval": { pleat: "pleat writes no TensorBoard files" },
  "wandb-project": { pleat: "pleat writes JSON lines (--log json), no Weights & Biases runs" },
  "wandb-exp-name": { pleat: "pleat writes JSON lines (--log json), no Weights & Biases runs" },
  "wandb-save-dir": { pleat: "pleat writes JSON lines (--log json), no Weights & Biases runs" },
  "timing-log-level": { pleat: "pleat's summaries and traces time the steps" },
  "ckpt-format": { pleat: "pleat writes its own crash-safe checkpoints" },
  "num-workers": { pleat: "pleat reads its data without loader workers" },
  "data-cache-path": { pleat: "pleat keeps no dataset index cache" },
  "distributed-backend": { accepts: ["nccl", "gloo"], pleat: "pleat's --backend chooses how ranks talk" },
  "moe-flex-dispatcher-backend": { accepts: ["deepep", "hybridep"], pleat: "pleat's all-to-all dispatcher has the flex dispatcher's contract" },
  "moe-deepep-num-sms": { pleat: "a GPU kernel setting" },
  "moe-hybridep-num-sms": { pleat: "a GPU kernel setting" },
  "attention-backend": { accepts: ["flash", "fused", "unfused", "local", "auto"], pleat: "pleat's attention kernel is its own" },
  "cross-entropy-fusion-impl": { accepts: ["native", "te"], pleat: "a kernel choice" },
  "manual-gc-interval": { pleat: "a Python setting" },
  "main-grads-dtype": { accepts: ["fp32"], pleat: "pleat accumulates gradients in fp32" },
  "exp-avg-dtype": { accepts: ["fp32"], pleat: "pleat keeps AdamW's moments in fp32" },
  "exp-avg-sq-dtype": { accepts: ["fp32"], pleat: "pleat keeps AdamW's moments in fp32" },
  "cuda-graph-impl": { accepts: ["none", "local", "transformer_engine"], pleat: "CUDA graphs are a GPU runtime choice" },
  "empty-unused-memory-level": { pleat: "a CUDA allocator setting" },
  "tensorboard-queue-size": { pleat: "pleat writes no TensorBoard files" },
  "dist-ckpt-strictness": { pleat: "pleat checks its checkpoints whole (every file's checksum)" },
  "ddp-bucket-size": { pleat: "the distributed optimizer's buckets are pleat's own" },
  "profile-step-start": { pleat: "pleat traces with --trace FILE --trace-steps FIRST:LAST" },
  "profile-step-end": { pleat: "pleat traces with --trace FILE --trace-steps FIRST:LAST" },
  "test-data-path": { pleat: "pleat evaluates held-out data from --valid-data-path; it reads no test split" },
}

/**
 * Megatron-LM settings pleat has no equivalent of, each with the fix.
 * @category configuration
 */
export const unsupported: Readonly<Record<string, string>> = {
  fp16: "pleat trains in fp32 or bf16: use --bf16",
  "tokenizer-model": "pleat trains on token ids: tokenize beforehand, and give --vocab",
  "moe-layer-recompute": "use --recompute-granularity selective --recompute-modules moe (Megatron-LM's form since it was deprecated)",
  "moe-router-padding-for-quantization": "it pads the routing for fp8 and fp4 GEMMs, which pleat has not (Megatron-LM refuses it without them too): drop it",
  "moe-extended-tp": "Megatron-LM's deprecated form of expert tensor parallelism: use --expert-tensor-parallel-size",
  "moe-use-upcycling": "upcycle the dense model once with pleat import --experts E --topk K (a Hugging Face Llama, Mistral or Qwen3), then train with --resume",
  "moe-upcycling-granularity": "give it to the upcycling import: pleat import --experts E --granularity G",
  "moe-enable-routing-replay": "pleat replays routing from files: --routing-record DIR on one run, --routing-replay DIR on another (numpy .npy step files)",
  "no-load-optim": "pleat's --load restores the whole state; to start a new schedule from a model, use pleat import",
  finetune: "pleat's --load restores the whole state; to start a new schedule from a model, use pleat import",
  "lr-warmup-fraction": "use --lr-warmup-iters",
  "train-samples": "use --train-iters",
  "batch-size": "use --micro-batch-size",
  "exit-duration-in-mins": "pleat runs --train-iters steps; SIGINT stops a run early, keeping its last checkpoint",
  "pretrained-checkpoint": "start from a checkpoint with --load DIR (pleat's own) or pleat import (a Hugging Face model)",
  "fp8-format": "pleat trains in fp32 or bf16: use --bf16",
  "fp8-recipe": "pleat trains in fp32 or bf16: use --bf16",
  "use-torch-fsdp2": "pleat shards the optimizer state (--use-distributed-optimizer, ZeRO-1), not the parameters: use that",
  "use-megatron-fsdp": "pleat shards the optimizer state (--use-distributed-optimizer, ZeRO-1), not the parameters: use that",
  "data-parallel-sharding-strategy": "pleat shards the optimizer state (--use-distributed-optimizer, ZeRO-1), not the gradients or parameters: use that",
  "save-retain-interval": "pleat keeps the newest --keep K checkpoints: raise --keep to keep more",
  "vocab-file": "pleat trains on token ids: tokenize beforehand, and give --vocab",
  "merge-file": "pleat trains on token ids: tokenize beforehand, and give --vocab",
  "decoder-seq-length": "pleat trains decoder-only models: use --seq-length",
  "loss-scale": "a loss scale is for fp16, which pleat has not: use --bf16",
  "initial-loss-scale": "a loss scale is for fp16, which pleat has not: use --bf16",
  "rotary-interleaved": "pleat's RoPE rotates the two halves of a head, not interleaved pairs: drop it",
  "hybrid-override-pattern": "Mamba hybrids are not built: pleat trains transformers",
  spec: "pleat's layers are its own: describe the model with its flags, or --definition FILE#EXPORT",
  "heterogeneous-layers-config-path": "give a model of your own with --definition FILE#EXPORT",
}

/** `words` as lines of at most `width` characters, each starting with `indent`. */
const wrapped = (words: ReadonlyArray<string>, width: number, indent: string): string => {
  const lines: Array<string> = []
  let line = indent
  for (const w of words) {
    if (line.length > indent.length && line.length + 1 + w.length > width) {
      lines.push(line)
      line = indent
    }
    line += line.length > indent.length ? ` ${w}` : w
  }
  if (line.length > indent.length) lines.push(line)
  return lines.join("\n")
}

/**
 * The help text's section on Megatron-LM's names (the tables above, wrapped).
 * @category mapping
 */
export const usage = (): string =>
  [
    "Megatron-LM's argument names work as well, so an argument list written for Megatron-LM runs as",
    "written; with any of them, what the command leaves unset takes Megatron-LM's default (tp, cp, pp, ep 1,",
    "etp tp, world the fewest ranks that fit, kv heads = heads, ffn 4 x hidden (with --swiglu 8/3 x hidden",
    "to a multiple of 64), moe-ffn = ffn, global batch = micro-batch x dp, init std 0.02, norm eps 1e-5, aux",
    "loss coefficient 0, no warm-up, min lr 0, adam beta2 0.999, linear decay, linear biases unless",
    "--disable-bias-linear). Names of pleat's flags:",
    wrapped(
      Object.entries(renamed).map(([m, p]) => `--${m}=--${p},`),
      100,
      "  ",
    ),
    "  --bf16=--precision bf16, --recompute-activations=--recompute selective, --moe-router-load-balancing-type",
    "  T... with --moe-aux-loss-coeff C...=--aux-loss (aux_loss aux, seq_aux_loss seq_aux, global_aux_loss",
    "  global_aux; sinkhorn --sinkhorn, quantile_balancing --quantile-balancing, each with --aux-loss none),",
    "  --moe-apply-probs-on-input=--probs-at input, --moe-router-topk-limited-devices N=--num-groups EP",
    "  --group-topk N, --window-size L,0=--sliding-window L+1, --moe-token-dispatcher-type flex=--dispatcher",
    "  alltoall (the same contract; DeepEP and HybridEP are GPU kernels),",
    "  --position-embedding-type yarn=--rope-type yarn, --rotary-seq-len-interpolation-factor N=--rope-type linear",
    "  --rotary-scaling-factor N,",
    "  --load DIR=--resume DIR when DIR holds a checkpoint (else the run starts from its initialization),",
    "  --num-layers-per-virtual-pipeline-stage N=--vpp layers / pp / N,",
    "  --data-path PREFIX (or --train-data-path; --valid-data-path)=--data PREFIX.bin (--eval-data) with",
    "  --data-dtype from PREFIX.idx.",
    "Taken without effect (what pleat does anyway, how Megatron-LM computes, or what it logs):",
    wrapped(
      [
        ...Object.keys(noEffect).map((n) => `--${n},`),
        ...Object.entries(valued).map(([n, v]) => `--${n}${v.accepts === undefined ? " N" : ` ${v.accepts.join("|")}`},`),
        "--recompute-method uniform.",
      ],
      100,
      "  ",
    ),
    "Refused with the fix: other values of those, and",
    wrapped(
      Object.keys(unsupported).map((n, k, all) => `--${n}${k === all.length - 1 ? "." : ","}`),
      100,
      "  ",
    ),
  ].join("\n")
