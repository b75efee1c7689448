// `pleat export`: what it prints, what it refuses before writing anything (exit 2, one line
// naming the flag, the value and the fix), that a crash at any step of its writing leaves no
// partial model directory, and, where a Python with torch and transformers is found
// ($PLEAT_PYTHON, python3), that transformers itself loads the directory and computes pleat's
// loss of the checkpoint (scripts/check-hf-export.py).
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import { beforeAll, describe, expect, test } from "vitest"
import { readModelDir } from "../train/hfModelDir.js"
import { lmLoss } from "../train/hfReference.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { python, sayIfSkipped, transformersLosses } from "./transformersPython.js"
import { records, uint16File } from "./tokenFiles.js"
import { pleatMain } from "../support/pleatProcess.js"

const root = path.resolve(import.meta.dirname, "../..")

const small = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]
const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]
const window = [3, 14, 15, 9, 26, 5, 35, 8, 39]

/** Multi-latent attention on 4 heads: a query latent of `qLora` (0: none), a kv latent of 8, heads of 4 + 6 rotary for q/k and 5 for v. */
/** YaRN with factor s over a pretraining length of `original`, and its mscales (0: not given). */
const yarnFlags = (s: number, original: number, mscale: number, mscaleAllDim: number): Array<string> => [
  ...["--rope-type", "yarn", "--rotary-scaling-factor", String(s), "--original-max-position-embeddings", String(original)],
  ...["--mscale", String(mscale), "--mscale-all-dim", String(mscaleAllDim), "--beta-fast", "8", "--beta-slow", "2"],
]

/** GPT-OSS's expert activation. */
const gptOss = ["--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "7"]

const latent = (qLora: number): Array<string> => [
  ...["--heads", "4", "--kv-heads", "4", "--multi-latent-attention", ...(qLora === 0 ? [] : ["--q-lora-rank", String(qLora)])],
  ...["--kv-lora-rank", "8", "--qk-head-dim", "4", "--qk-pos-emb-head-dim", "6", "--v-head-dim", "5"],
]

let mixtral = ""
let sigmoid = ""
let shared = ""
let hybrid = ""
let latentSoftmax = ""
let latentEps = ""
let sinkhorn = ""
let quantile = ""
let onInput = ""
beforeAll(async () => {
  const save = async (flags: ReadonlyArray<string>) => {
    const dir = fresh("export-ckpt")
    const r = await run(["train", ...small, ...flags, "--steps", "2", "--save", dir, "--log", "json"])
    expect(r.status, r.err).toBe(0)
    return dir
  }
  mixtral = await save(["--dtype", "float64"])
  sigmoid = await save(["--score-function", "sigmoid", "--expert-bias"])
  shared = await save(["--shared-expert-ffn", "8"])
  hybrid = await save(["--definition", `${path.join(root, "properties/train/definitions.ts")}#hybrid`])
  latentSoftmax = await save([...latent(12)])
  latentEps = await save([...latent(12), "--score-function", "sigmoid", "--expert-bias", "--shared-expert-ffn", "24", "--moe-ffn", "12", "--norm-eps", "1e-5"])
  sinkhorn = await save(["--sinkhorn"])
  quantile = await save(["--quantile-balancing"])
  onInput = await save(["--probs-at", "input", "--topk", "1", "--pre-softmax"])
}, 60_000)

describe("pleat export writes a model directory", () => {
  test("says what it wrote; an empty --out directory is taken", async () => {
    const out = fresh("export-empty")
    const r = await run(["export", "--checkpoint", mixtral, "--out", out])
    expect(r.status, r.err).toBe(0)
    expect(r.out).toMatch(new RegExp(`^pleat export: step 2 of .* as mixtral \\(float32, 64 tensors, \\d+\\.\\d kB in 1 safetensors file\\) into ${out}\\n`))
    expect(r.out).toContain(`AutoModelForCausalLM.from_pretrained("${out}")`)
    expect(readdirSync(out).sort()).toEqual(["config.json", "model.safetensors"])
    // Nothing left beside it.
    expect(readdirSync(path.dirname(out)).filter((f) => f.includes(".partial-"))).toEqual([])
  })

  test("a full disk is one line (exit 1), and nothing is left at --out or beside it", async () => {
    const out = path.join(fresh("export-full-disk"), "model")
    process.env.PLEAT_SAVE_FAIL = "model.safetensors"
    try {
      const r = await run(["export", "--checkpoint", mixtral, "--out", out])
      expect(r.status).toBe(1)
      expect(r.err).toMatch(/^pleat export: the file system failed: ENOSPC: no space left on device .*; nothing was published at .* \(its partial directory was removed\)\n$/)
    } finally {
      delete process.env.PLEAT_SAVE_FAIL
    }
    expect(existsSync(out)).toBe(false)
    expect(readdirSync(path.dirname(out))).toEqual([])
  })

  test("a crash at any step leaves no model directory or the whole one", () => {
    const scratch = fresh("export-crash")
    let completed = false
    for (let n = 1; n < 100 && !completed; n++) {
      const out = path.join(scratch, `model-${n}`)
      const child = spawnSync(process.execPath, [pleatMain, "export", "--checkpoint", mixtral, "--out", out, "--max-shard-size", "40kB", "--dtype", "float64"], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, PLEAT_CRASH_AT: String(n) },
      })
      completed = child.status === 0
      if (!completed) expect(child.signal, `crash point ${n}: ${child.stderr}`).toBe("SIGKILL")
      // Killed before the rename: no directory; after it (flushing its parent) or not killed: the whole one.
      if (!existsSync(out)) {
        expect(completed, `crash point ${n}`).toBe(false)
        continue
      }
      const model = readModelDir(out)
      expect(model.tensors.size).toBe(64)
      expect(Number.isFinite(lmLoss(model, window))).toBe(true)
    }
    expect(completed).toBe(true)
  }, 120_000)
})

describe("what cannot be exported is refused before anything is written", () => {
  test("flags", () => {
    expect(refused(["export"])).toBe("pleat export: --checkpoint: (not given) is required; fix: pass --checkpoint DIR, a directory written by pleat train --save")
    expect(refused(["export", "--checkpoint", mixtral])).toBe("pleat export: --out: (not given) is required; fix: pass --out DIR, a new path or an empty directory for the model")
    const out = path.join(fresh("export-refused"), "m")
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--format", "llama"])).toBe(
      'pleat export: --format: "llama" is not allowed; fix: use one of auto, mixtral, qwen2-moe, qwen3-moe, dots1, deepseek-v3, gpt-oss, glm4-moe, deepseek-v2, olmoe',
    )
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--dtype", "float16"])).toBe(
      'pleat export: --dtype: "float16" is not allowed; fix: use one of float32, bfloat16, float64',
    )
    for (const bad of ["0", "5XB", "-1GB", "GB"])
      expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--max-shard-size", bad])).toBe(
        `pleat export: --max-shard-size: "${bad}" is not a size of 1 byte or more; fix: pass a size such as 5GB, 500MB, 2GiB or a byte count`,
      )
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--bogus"])).toContain("--bogus")
    expect(existsSync(out)).toBe(false)
  })

  test("the checkpoint, the output and the model", () => {
    const out = path.join(fresh("export-refused"), "m")
    expect(refused(["export", "--checkpoint", path.join(out, "none"), "--out", out])).toMatch(/^pleat export: --checkpoint: ".*none" holds no complete checkpoint/)
    const file = path.join(fresh("export-file"), "f")
    writeFileSync(file, "x")
    expect(refused(["export", "--checkpoint", mixtral, "--out", file])).toBe(`pleat export: --out: "${file}" is a file; fix: pass a new path or an empty directory for the model`)
    expect(refused(["export", "--checkpoint", mixtral, "--out", path.join(file, "m")])).toContain(
      "is a file, not a directory); fix: pass the path of a folder in a directory you can write",
    )
    expect(refused(["export", "--checkpoint", mixtral, "--out", "/proc/pleat-model"])).toContain("/proc is on the proc pseudo-file system")
    const full = fresh("export-full")
    mkdirSync(path.join(full, "keep"))
    expect(refused(["export", "--checkpoint", mixtral, "--out", full])).toBe(
      `pleat export: --out: "${full}" is a directory that is not empty; fix: pass a new path or an empty directory for the model (an export never writes over files)`,
    )
    expect(refused(["export", "--checkpoint", sigmoid, "--out", out])).toMatch(
      /^pleat export: --checkpoint: ".*" holds a model no transformers architecture pleat writes can run \(mixtral, qwen2-moe, qwen3-moe, dots1, deepseek-v3, gpt-oss, glm4-moe, deepseek-v2 or olmoe\): it routes with --score-function sigmoid; it has no q and k norms, which every dots1 attention has \(--qk-norm\); it has no multi-latent attention \(--multi-latent-attention\), which every DeepSeek-V3 attention has \(a sigmoid-routed model with --qk-norm is a dots1\); its shared experts are not a whole number of experts' widths \(--shared-expert-ffn a multiple of --moe-ffn 32\), as glm4-moe's are; it has no multi-latent attention \(--multi-latent-attention\), which every DeepSeek-V2 attention has; fix: export a model trained with softmax routing/,
    )
    expect(refused(["export", "--checkpoint", sinkhorn, "--out", out])).toMatch(
      /^pleat export: --checkpoint: ".*" holds a model no transformers architecture .*: it was trained with Sinkhorn routing \(--sinkhorn\), which no Hugging Face MoE config describes; /,
    )
    expect(refused(["export", "--checkpoint", quantile, "--out", out])).toContain(
      "it routes with quantile balancing's per-expert beta on the logits (--quantile-balancing), which no Hugging Face MoE config describes",
    )
    expect(refused(["export", "--checkpoint", onInput, "--out", out])).toContain(
      "it weights each token's input to its expert by the prob (--probs-at input), where the Hugging Face MoE layers pleat writes weight the expert's output",
    )
    expect(refused(["export", "--checkpoint", shared, "--out", out])).toContain(
      "it has shared experts (--shared-expert-ffn 8), which Mixtral has not; its shared experts have no gate, where Qwen2-MoE's always do (--shared-expert-gate)",
    )
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--format", "qwen2-moe"])).toMatch(
      /^pleat export: --format: "qwen2-moe" cannot hold the checkpoint in .*: it has no shared experts, which every Qwen2-MoE layer has/,
    )
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--format", "dots1"])).toMatch(
      /^pleat export: --format: "dots1" cannot hold the checkpoint in .*: it routes with softmax, where dots1 routes with sigmoid scores \(--score-function sigmoid\)/,
    )
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--format", "qwen3-moe"])).toMatch(
      /^pleat export: --format: "qwen3-moe" cannot hold the checkpoint in .*: it has no q and k norms, which every Qwen3-MoE attention has \(--qk-norm\)/,
    )
    // Multi-latent attention: deepseek-v3 only, and there as DeepSeek-V3 routes and normalizes.
    expect(refused(["export", "--checkpoint", mixtral, "--out", out, "--format", "deepseek-v3"])).toMatch(
      /^pleat export: --format: "deepseek-v3" cannot hold the checkpoint in .*: it has no multi-latent attention \(--multi-latent-attention\), which every DeepSeek-V3 attention has \(a sigmoid-routed model with --qk-norm is a dots1\); fix: /,
    )
    expect(refused(["export", "--checkpoint", latentEps, "--out", out, "--format", "dots1"])).toMatch(
      /^pleat export: --format: "dots1" cannot hold the checkpoint in .*: it has multi-latent attention \(--multi-latent-attention\), which dots1 has not \(deepseek-v3 and deepseek-v2 have\); fix: .*--multi-latent-attention \(deepseek-v3\) or q\/k norms optional with partial RoPE \(glm4-moe\); or --multi-latent-attention with softmax routing, --pre-softmax and ungated shared experts \(deepseek-v2\); or --qk-norm --qk-norm-over-heads, every layer MoE \(olmoe\)$/,
    )
    expect(refused(["export", "--checkpoint", latentSoftmax, "--out", out])).toContain(
      "(mixtral, qwen2-moe, qwen3-moe, dots1, deepseek-v3, gpt-oss, glm4-moe, deepseek-v2 or olmoe): it has multi-latent attention (--multi-latent-attention), which Mixtral has not (deepseek-v3 and deepseek-v2 have); it has multi-latent attention (--multi-latent-attention), which Qwen2-MoE has not (deepseek-v3 and deepseek-v2 have); it has multi-latent attention (--multi-latent-attention), which Qwen3-MoE has not (deepseek-v3 and deepseek-v2 have); it has multi-latent attention (--multi-latent-attention), which dots1 has not (deepseek-v3 and deepseek-v2 have); it routes with softmax, where deepseek-v3 routes with sigmoid scores (--score-function sigmoid); it has multi-latent attention (--multi-latent-attention), which GPT-OSS has not (deepseek-v3 and deepseek-v2 have); it has multi-latent attention (--multi-latent-attention), which GLM-4.5 has not (deepseek-v3 and deepseek-v2 have)",
    )
    expect(refused(["export", "--checkpoint", latentSoftmax, "--out", out, "--format", "deepseek-v2"])).toMatch(
      /^pleat export: --format: "deepseek-v2" cannot hold the checkpoint in .*: its probs are renormalized over the top-k, where deepseek-v2 weights the top-k of a softmax over every expert as they are \(--pre-softmax\); fix: /,
    )
    expect(refused(["export", "--checkpoint", latentEps, "--out", out, "--format", "deepseek-v2"])).toContain(
      "it routes with --score-function sigmoid, where deepseek-v2 routes with a softmax over every expert",
    )
    expect(refused(["export", "--checkpoint", latentEps, "--out", out])).toContain(
      "it has multi-latent attention (--multi-latent-attention), which dots1 has not (deepseek-v3 and deepseek-v2 have); its latent norms have epsilon --norm-eps 0.00001, where DeepSeek-V3's q_a_layernorm and kv_a_layernorm always have 1e-6 (train with --norm-eps 1e-6)",
    )
    expect(refused(["export", "--checkpoint", hybrid, "--out", out])).toMatch(
      /^pleat export: --checkpoint: ".*" is not a checkpoint of pleat's built-in model \(it holds layers\.0\.dense\.norm, layers\.0\.dense\.wGate, layers\.0\.dense\.wUp and 5 more, which mixtral has no place for\); fix: export a checkpoint of the built-in model/,
    )
    expect(existsSync(out)).toBe(false)
  })
})

sayIfSkipped("pleat export")

describe.skipIf(python === undefined)("transformers loads the directory", () => {
  test("and computes pleat's loss of the checkpoint (float64 weights; its RoPE and RMSNorm statistics, and dots1's router, in float32), Mixtral (with a sliding window too), Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 and OLMoE", async () => {
    const tokens = uint16File(window)
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      ["MixtralForCausalLM", []],
      // Every layer's sliding window of 3 tokens over sequences of 8: Mixtral's sliding_window.
      ["MixtralForCausalLM", ["--sliding-window", "3"]],
      // Llama 3's RoPE scaling (rope_type llama3) over a pretraining length of 4.
      ["MixtralForCausalLM", ["--rope-type", "llama3", "--original-max-position-embeddings", "4"]],
      // Linear position interpolation (rope_type linear) by 3.
      ["MixtralForCausalLM", ["--rope-type", "linear", "--rotary-scaling-factor", "3"]],
      ["Qwen2MoeForCausalLM", ["--shared-expert-ffn", "8", "--shared-expert-gate", "--moe-every", "2", "--untie-embeddings", "--pre-softmax"]],
      // Heads of width 6 (not hidden / heads = 4), q/k norms, biases (o's as zeros), a leading dense layer.
      ["Qwen3MoeForCausalLM", ["--head-dim", "6", "--qk-norm", "--qkv-bias", "--dense-first", "1", "--untie-embeddings"]],
      // DeepSeek-V3's router on Qwen3's attention: sigmoid, trained expert biases, 4 groups keeping 1, scaling, shared experts.
      [
        "Dots1ForCausalLM",
        [
          ...["--head-dim", "6", "--qk-norm", "--score-function", "sigmoid", "--expert-bias", "--bias-update-rate", "0.05", "--shared-expert-ffn", "64"],
          ...["--num-groups", "4", "--group-topk", "1", "--scaling-factor", "2.5", "--dense-first", "1", "--aux-loss", "seq_aux:0.001"],
        ],
      ],
      // GLM-4.5: dots1's router on grouped-query attention with q/k/v biases, half of each head rotated (partial_rotary_factor), with q/k norms and without.
      [
        "Glm4MoeForCausalLM",
        [
          ...["--score-function", "sigmoid", "--expert-bias", "--bias-update-rate", "0.05", "--shared-expert-ffn", "32"],
          ...["--rotary-percent", "0.5", "--qkv-bias", "--dense-first", "1"],
        ],
      ],
      ["Glm4MoeForCausalLM", ["--score-function", "sigmoid", "--expert-bias", "--shared-expert-ffn", "32", "--rotary-percent", "0.5", "--qk-norm", "--scaling-factor", "2.5"]],
      // DeepSeek-V3: dots1's router with multi-latent attention (its rotary rows written interleaved), with a query latent and without.
      [
        "DeepseekV3ForCausalLM",
        [
          ...latent(12),
          ...["--score-function", "sigmoid", "--expert-bias", "--bias-update-rate", "0.05", "--shared-expert-ffn", "64", "--num-groups", "4", "--group-topk", "1"],
          ...["--scaling-factor", "2.5", "--dense-first", "1", "--untie-embeddings"],
        ],
      ],
      ["DeepseekV3ForCausalLM", [...latent(0), "--score-function", "sigmoid", "--expert-bias", "--bias-update-rate", "0.05", "--shared-expert-ffn", "32", "--topk", "3"]],
      // OLMoE: q and k norms over every head at once, the top-k as it is; with q/k/v biases (o's as zeros), renormalized.
      ["OlmoeForCausalLM", ["--qk-norm", "--qk-norm-over-heads", "--pre-softmax", "--untie-embeddings"]],
      ["OlmoeForCausalLM", ["--qk-norm", "--qk-norm-over-heads", "--qkv-bias"]],
      // DeepSeek-V2: multi-latent attention with a softmax over every expert, its top-k as it is, scaled; groups scored by their best expert (topk 3 over 2 kept).
      ["DeepseekV2ForCausalLM", [...latent(12), "--pre-softmax", "--shared-expert-ffn", "64", "--scaling-factor", "2.5", "--dense-first", "1", "--untie-embeddings"]],
      ["DeepseekV2ForCausalLM", [...latent(0), "--pre-softmax", "--shared-expert-ffn", "32", "--topk", "3", "--num-groups", "4", "--group-topk", "2"]],
      // YaRN (HfRope): DeepSeek-V3's with its softmax factor from mscale_all_dim, and Qwen3's plain attention factor.
      [
        "DeepseekV3ForCausalLM",
        [
          ...latent(12),
          "--score-function",
          "sigmoid",
          "--shared-expert-ffn",
          "32",
          ...["--rope-type", "yarn", "--rotary-scaling-factor", "40", "--original-max-position-embeddings", "4"],
        ],
      ],
      ["DeepseekV3ForCausalLM", [...latent(0), "--score-function", "sigmoid", "--shared-expert-ffn", "32", ...yarnFlags(4, 2, 1, 0.7)]],
      ["Qwen3MoeForCausalLM", ["--head-dim", "6", "--qk-norm", ...yarnFlags(8, 2, 0, 0)]],
      // GPT-OSS: learnable sinks, a window of 3 on every other layer, the experts' clamped activation, the biases as zeros.
      ["GptOssForCausalLM", [...gptOss, "--softmax-type", "learnable", "--sliding-window", "3", "--window-attn-skip-freq", "2", "--untie-embeddings"]],
      // Sinks at 0 (off-by-one), YaRN unrounded, weights large enough for the clamp at 7 to bind.
      ["GptOssForCausalLM", [...gptOss, "--softmax-type", "off-by-one", ...yarnFlags(4, 2, 0, 0), "--no-yarn-correction-range-round-to-int", "--init-method-std", "2"]],
    ]
    for (const [architecture, flags] of cases) {
      const dir = fresh("export-hf")
      expect((await run(["train", ...small, ...flags, "--dtype", "float64", "--steps", "2", "--save", dir])).status).toBe(0)
      const evaluated = await run([
        "train",
        ...oneRank,
        ...flags,
        "--dtype",
        "float64",
        "--steps",
        "2",
        "--resume",
        dir,
        "--eval-data",
        tokens,
        "--eval-batches",
        "1",
        "--log",
        "json",
      ])
      const loss = records(evaluated.out, "eval")[0]?.evalLoss as number
      const out = path.join(fresh("export-hf-out"), "model")
      expect((await run(["export", "--checkpoint", dir, "--out", out, "--dtype", "float64"])).status).toBe(0)
      const result = transformersLosses(out, tokens, 8, "float64")
      expect(result.architecture).toBe(architecture)
      // transformers computes RoPE's angles and RMSNorm's mean square in float32 whatever the dtype.
      expect(Math.abs((result.losses[0] as number) - loss), `${architecture}: transformers ${result.losses[0]}, pleat ${loss}`).toBeLessThan(1e-6 * Math.max(1, loss))
    }
  }, 300_000)
})
