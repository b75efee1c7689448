// `pleat import`: a Hugging Face model directory as a checkpoint at step 0 with its settings as a
// --config file. What it writes trains (and evaluates) under any mapping; what pleat's model
// cannot compute as transformers would is refused before anything is written (exit 2, one line
// naming the config key or tensor and the fix). Models transformers itself made:
// ImportTransformers.test.ts.
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import { beforeAll, describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Params from "../../src/train/Params.js"
import { readModelDir, readSafetensors } from "../train/hfModelDir.js"
import { lmLoss } from "../train/hfReference.js"
import { evalLoss, fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { records, uint16File } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const small = ["--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]
const window = [3, 14, 15, 9, 26, 5, 35, 8, 39]

/** A safetensors file of float64 tensors, written here (not by pleat). */
const writeSafetensors = (file: string, tensors: ReadonlyMap<string, { readonly shape: ReadonlyArray<number>; readonly values: Float64Array }>) => {
  const header: Record<string, unknown> = {}
  let at = 0
  for (const [name, t] of tensors) {
    header[name] = { dtype: "F64", shape: t.shape, data_offsets: [at, at + 8 * t.values.length] }
    at += 8 * t.values.length
  }
  const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, " "))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.length))
  writeFileSync(file, Buffer.concat([length, json, ...[...tensors.values()].map((t) => Buffer.from(t.values.buffer))]))
}

/** A copy of the model directory `dir` with its config.json changed by `change`. */
const withConfig = (dir: string, change: (c: Record<string, unknown>) => void): string => {
  const copy = path.join(fresh("import-case"), "model")
  cpSync(dir, copy, { recursive: true })
  const config = JSON.parse(readFileSync(path.join(copy, "config.json"), "utf8"))
  change(config)
  writeFileSync(path.join(copy, "config.json"), JSON.stringify(config))
  return copy
}

/** A copy of the model directory `dir` with its tensors changed by `change`. */
const withTensors = (dir: string, change: (t: Map<string, { shape: ReadonlyArray<number>; values: Float64Array }>) => void): string => {
  const copy = path.join(fresh("import-case"), "model")
  cpSync(dir, copy, { recursive: true })
  const tensors = readSafetensors(path.join(copy, "model.safetensors")) as Map<string, { shape: ReadonlyArray<number>; values: Float64Array }>
  change(tensors)
  writeSafetensors(path.join(copy, "model.safetensors"), tensors)
  return copy
}

let mixtral = ""
let qwen = ""
let qwen3 = ""
let dots1 = ""
let deepseek = ""
let gptOss = ""
let mixtralCheckpoint = ""
beforeAll(async () => {
  const exported = async (flags: ReadonlyArray<string>) => {
    const ckpt = fresh("import-src")
    expect((await run(["train", ...oneRank, ...small, ...flags, "--steps", "2", "--save", ckpt])).status).toBe(0)
    const out = path.join(fresh("import-hf"), "model")
    expect((await run(["export", "--checkpoint", ckpt, "--out", out])).status).toBe(0)
    return { ckpt, out }
  }
  const m = await exported([])
  mixtral = m.out
  mixtralCheckpoint = m.ckpt
  qwen = (await exported(["--shared-expert-ffn", "8", "--shared-expert-gate", "--moe-every", "2"])).out
  qwen3 = (await exported(["--qk-norm", "--head-dim", "6", "--qkv-bias"])).out
  dots1 = (await exported(["--qk-norm", "--score-function", "sigmoid", "--expert-bias", "--shared-expert-ffn", "32"])).out
  deepseek = (
    await exported([
      ...["--heads", "4", "--kv-heads", "4", "--multi-latent-attention", "--q-lora-rank", "12", "--kv-lora-rank", "8", "--qk-head-dim", "4", "--qk-pos-emb-head-dim", "6"],
      ...["--v-head-dim", "5", "--score-function", "sigmoid", "--expert-bias", "--shared-expert-ffn", "32"],
    ])
  ).out
  gptOss = (
    await exported([
      "--quick-geglu",
      "--glu-linear-offset",
      "1",
      "--activation-func-clamp-value",
      "7",
      "--softmax-type",
      "learnable",
      "--sliding-window",
      "3",
      "--window-attn-skip-freq",
      "2",
    ])
  ).out
}, 60_000)

describe("pleat import writes a checkpoint to train on", () => {
  test("says what it wrote and how to train it; the checkpoint evaluates as the model it came from, under another mapping", async () => {
    const out = path.join(fresh("import-out"), "ckpt")
    const r = await run(["import", "--model-dir", mixtral, "--out", out])
    expect(r.status, r.err).toBe(0)
    expect(r.out).toMatch(new RegExp(`^pleat import: .* \\(mixtral, \\d+ parameters\\) as a pleat checkpoint at step 0 in ${out}, its settings in ${out}/model.json\\n`))
    expect(r.out).toContain(`train it with: pleat train --resume ${out} --config ${out}/model.json`)
    const tokens = uint16File(window)
    const evaluate = (flags: ReadonlyArray<string>) => evalLoss(flags, tokens)
    const before = await evaluate([...oneRank, ...small, "--resume", mixtralCheckpoint, "--steps", "2"])
    const after = await evaluate([
      "--world",
      "4",
      "--tp",
      "2",
      "--cp",
      "1",
      "--pp",
      "2",
      "--ep",
      "2",
      "--global-batch",
      "2",
      "--seq",
      "8",
      "--config",
      `${out}/model.json`,
      "--resume",
      out,
      "--steps",
      "0",
    ])
    // float32 weights, the same values: only the mapping's summation order differs.
    expect(Math.abs(after - before)).toBeLessThan(1e-5)
    // And it trains on.
    const trained = await run(["train", ...oneRank, "--config", `${out}/model.json`, "--resume", out, "--steps", "2", "--seq", "8", "--global-batch", "2", "--log", "json"])
    expect(trained.status, trained.err).toBe(0)
    expect(records(trained.out, "step").map((s) => s.step)).toEqual([1, 2])
  }, 60_000)
})

describe("q, k, v biases", () => {
  test("a Qwen2-MoE with non-zero biases evaluates as an independent reading of it, under tp 2 with sequence parallelism and cp 2", async () => {
    const flags = [...small, "--shared-expert-ffn", "8", "--shared-expert-gate", "--qkv-bias", "--dtype", "float64"]
    const ckpt = fresh("bias-src")
    expect((await run(["train", ...oneRank, ...flags, "--steps", "1", "--save", ckpt])).status).toBe(0)
    const exported = path.join(fresh("bias-hf"), "model")
    expect((await run(["export", "--checkpoint", ckpt, "--out", exported, "--dtype", "float64"])).status).toBe(0)
    // Biases no training has shaped: a value per element.
    const biased = withTensors(exported, (t) => {
      for (const [name, x] of t) if (name.endsWith("_proj.bias")) x.values.forEach((_, i) => (x.values[i] = Math.sin(3 * i + name.length)))
    })
    const out = path.join(fresh("bias-out"), "ckpt")
    expect((await run(["import", "--model-dir", biased, "--out", out, "--dtype", "float64"])).status).toBe(0)
    const settings = JSON.parse(readFileSync(path.join(out, "model.json"), "utf8")) as Record<string, unknown>
    expect(settings["qkv-bias"]).toBe(true)
    const tokens = uint16File(window)
    const e = await run([
      ...["train", "--world", "4", "--tp", "2", "--cp", "2", "--pp", "1", "--ep", "2", "--global-batch", "2", "--seq", "8"],
      ...["--config", `${out}/model.json`, "--resume", out, "--steps", "0", "--eval-data", tokens, "--eval-batches", "1", "--log", "json"],
    ])
    expect(e.status, e.err).toBe(0)
    const loss = records(e.out, "eval")[0]?.evalLoss as number
    const reference = lmLoss(readModelDir(biased), window)
    expect(Math.abs(loss - reference), `pleat ${loss}, reference ${reference}`).toBeLessThan(1e-9)
  }, 60_000)
})

describe("q, k, v biases in training", () => {
  test("train under a folded mapping as on one rank (pleat verify), take no weight decay, and belong to the model's identity", async () => {
    const v = await run(["verify", "--qkv-bias", "--dtype", "float64", "--steps", "2"])
    expect(v.status, v.err).toBe(0)
    const specs = Params.specs({ ...ModelConfig.small, qkvBias: true })
    const c = Optimizer.defaults(10)
    const decay = (name: string) => Optimizer.decayOf(c, specs.find((s) => s.name === name) as Params.ParamSpec)
    expect([decay("layers.0.bq"), decay("layers.0.bk"), decay("layers.0.bv"), decay("layers.0.attentionNorm")]).toEqual([0, 0, 0, 0])
    expect(decay("layers.0.wq")).toBe(c.weightDecay)
    const ckpt = fresh("bias-identity")
    expect((await run(["train", ...oneRank, ...small, "--qkv-bias", "--steps", "1", "--save", ckpt])).status).toBe(0)
    const resumed = await run(["train", ...oneRank, ...small, "--steps", "2", "--resume", ckpt])
    expect(resumed.status).toBe(2)
    expect(resumed.err).toContain("was saved from another run (qkvBias on; this run has qkvBias off)")
    expect(refused(["export", "--checkpoint", ckpt, "--out", path.join(fresh("bias-export"), "m"), "--format", "mixtral"])).toContain(
      "it has q, k, v biases (--qkv-bias), which Mixtral has not",
    )
  }, 60_000)
})

describe("what pleat's model cannot compute is refused before anything is written", () => {
  test("flags and directories", () => {
    expect(refused(["import"])).toBe("pleat import: --model-dir: (not given) is required; fix: pass --model-dir DIR, a Hugging Face model directory")
    const out = path.join(fresh("import-refused"), "ckpt")
    expect(refused(["import", "--model-dir", mixtral])).toContain("--out: (not given) is required")
    expect(refused(["import", "--model-dir", mixtral, "--out", out, "--dtype", "bfloat16"])).toBe(
      'pleat import: --dtype: "bfloat16" is not allowed; fix: use one of float32, float64',
    )
    expect(refused(["import", "--model-dir", path.join(out, "none"), "--out", out])).toMatch(/--model-dir: ".*none" is not a directory; fix: pass a Hugging Face model directory/)
    expect(refused(["import", "--model-dir", fresh("import-empty"), "--out", out])).toMatch(/--model-dir: ".*" has no config\.json/)
    const pickles = withConfig(mixtral, () => {})
    writeFileSync(path.join(pickles, "pytorch_model.bin"), "x")
    for (const f of readdirSync(pickles)) if (f.endsWith(".safetensors")) writeFileSync(path.join(pickles, f), "")
    expect(refused(["import", "--model-dir", pickles, "--out", out])).toMatch(/has a model\.safetensors that is not a safetensors file pleat reads: 0 bytes/)
    const full = fresh("import-full")
    writeFileSync(path.join(full, "x"), "x")
    expect(refused(["import", "--model-dir", mixtral, "--out", full])).toContain("--out: ")
    expect(refused(["import", "--model-dir", mixtral, "--out", "/proc/pleat-ckpt"])).toContain("/proc is on the proc pseudo-file system")
    expect(existsSync(out)).toBe(false)
  })

  test("a full disk is one line (exit 1)", async () => {
    const out = path.join(fresh("import-full-disk"), "ckpt")
    process.env.PLEAT_SAVE_FAIL = "model.json"
    try {
      const r = await run(["import", "--model-dir", mixtral, "--out", out])
      expect(r.status).toBe(1)
      expect(r.err).toMatch(/^pleat import: the file system failed: ENOSPC: no space left on device .*; .* holds no complete import \(remove it before importing again\)\n$/)
    } finally {
      delete process.env.PLEAT_SAVE_FAIL
    }
  })

  test("Mixtral's sliding_window is every layer's window (--sliding-window), and goes back out as it came", async () => {
    const out = path.join(fresh("import-window"), "ckpt")
    expect((await run(["import", "--model-dir", withConfig(mixtral, (c) => (c.sliding_window = 4)), "--out", out])).status).toBe(0)
    expect(Checkpoint.manifest(out).model.slidingWindow).toBe(4)
    expect(JSON.parse(readFileSync(path.join(out, "model.json"), "utf8"))["sliding-window"]).toBe(4)
    const exported = path.join(fresh("import-window-out"), "model")
    expect((await run(["export", "--checkpoint", out, "--out", exported])).status).toBe(0)
    expect(JSON.parse(readFileSync(path.join(exported, "config.json"), "utf8")).sliding_window).toBe(4)
    // Formats whose windows are per layer are not written one.
    expect(refused(["export", "--checkpoint", out, "--out", path.join(fresh("import-window-qwen"), "model"), "--format", "qwen3-moe"])).toContain(
      "it has sliding-window attention (--sliding-window 4), which pleat writes only as mixtral's or gpt-oss's sliding_window",
    )
  })

  test("config keys", () => {
    const out = path.join(fresh("import-refused"), "ckpt")
    const cases: ReadonlyArray<[(c: Record<string, unknown>) => void, RegExp]> = [
      // A dense model pleat upcycles only when asked (ImportUpcycle.test.ts).
      [(c) => (c.model_type = "llama"), /holds a dense llama model; fix: pass --experts E \(and --topk K\) to upcycle it/],
      [(c) => (c.hidden_act = "gelu"), /has hidden_act gelu in config\.json; fix: pleat's experts are SwiGLU/],
      [(c) => (c.sliding_window = 2.5), /has sliding_window 2\.5 in config\.json; fix: use a whole number of tokens, 1 or more, or null/],
      [
        (c) => (c.rope_parameters = { rope_type: "dynamic", rope_theta: 10000, factor: 8 }),
        /scales RoPE with rope_type dynamic; fix: .*\(rope_type default, linear, yarn or llama3\)/,
      ],
      [(c) => (c.rope_parameters = { rope_type: "yarn", rope_theta: 10000, factor: 4 }), /gives YaRN no original_max_position_embeddings \(undefined\)/],
      [(c) => (c.rope_scaling = { type: "yarn", factor: 4, original_max_position_embeddings: 8, attention_factor: 1.2 }), /gives YaRN an attention_factor of its own \(1\.2\)/],
      [(c) => (c.head_dim = 5), /has head_dim 5, which RoPE cannot turn \(an odd width\); fix: import a model whose heads are of an even width/],
      [
        (c) => (c.model_type = "qwen3_next"),
        /holds a qwen3_next model; fix: pass a Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model directory/,
      ],
      [(c) => (c.vocab_size = "40"), /has a config\.json pleat cannot read \(.*vocab_size/],
      [(c) => (c.num_key_value_heads = 3), /has num_key_value_heads 3, which does not divide num_attention_heads 4/],
      [(c) => (c.num_experts_per_tok = 9), /describes a model pleat cannot build \(topk 9 is larger than experts = 8\)/],
    ]
    for (const [change, expected] of cases) expect(refused(["import", "--model-dir", withConfig(mixtral, change), "--out", out])).toMatch(expected)
    // Qwen's windows are per layer (use_sliding_window from max_window_layers on); Mixtral's is every layer's.
    expect(refused(["import", "--model-dir", withConfig(qwen, (c) => Object.assign(c, { use_sliding_window: true, sliding_window: 4 })), "--out", out])).toMatch(
      /has a sliding window in some layers \(sliding_window 4\) in config\.json/,
    )
    expect(refused(["import", "--model-dir", withConfig(qwen, (c) => (c.mlp_only_layers = [0, 1])), "--out", out])).toMatch(
      /has no MoE layer \(mlp_only_layers and decoder_sparse_step leave none\); fix: import a model whose MoE layers are K, K \+ N, K \+ 2N/,
    )
    const dots1Cases: ReadonlyArray<[(c: Record<string, unknown>) => void, RegExp]> = [
      [(c) => (c.norm_topk_prob = false), /has norm_topk_prob false; fix: pleat renormalizes sigmoid probs over the top-k/],
      [
        (c) => Object.assign(c, { n_group: 4, topk_group: 2 }),
        /has n_group 4 and topk_group 2 with num_experts_per_tok 2: dots1 scores a group by its top 2, pleat by its top floor\(2 \/ 2\)/,
      ],
      [(c) => (c.n_shared_experts = 0), /has no shared experts \(n_shared_experts 0\)/],
    ]
    for (const [change, expected] of dots1Cases) expect(refused(["import", "--model-dir", withConfig(dots1, change), "--out", out])).toMatch(expected)
    // DeepSeek-V3: a YaRN factor below 1, biases and latent norms pleat's multi-latent attention has not.
    const deepseekCases: ReadonlyArray<[(c: Record<string, unknown>) => void, RegExp]> = [
      [(c) => (c.rope_scaling = { type: "yarn", factor: 0.5, original_max_position_embeddings: 8 }), /gives YaRN a factor of 0\.5; fix: .*a factor of 1 or more/],
      [(c) => (c.attention_bias = true), /has attention_bias true \(biases on q_a_proj, kv_a_proj_with_mqa and o_proj\)/],
      [(c) => (c.rms_norm_eps = 1e-5), /has rms_norm_eps 0\.00001, where transformers' q_a_layernorm and kv_a_layernorm keep 1e-6/],
      [(c) => (c.norm_topk_prob = false), /has norm_topk_prob false; fix: pleat renormalizes sigmoid probs over the top-k .*deepseek_v3 model/],
    ]
    for (const [change, expected] of deepseekCases) expect(refused(["import", "--model-dir", withConfig(deepseek, change), "--out", out])).toMatch(expected)
    // GPT-OSS: transformers' fixed clamp, layer_types pleat's window rule cannot give, a quantization pleat does not read (MXFP4: HfMxfp4.prop.ts), no attention biases.
    const gptOssCases: ReadonlyArray<[(c: Record<string, unknown>) => void, RegExp]> = [
      [(c) => (c.swiglu_limit = 5), /has swiglu_limit 5, where transformers' GPT-OSS clamps at 7 whatever it says/],
      [
        (c) => (c.layer_types = ["full_attention", "sliding_attention"]),
        /has layer_types \["full_attention","sliding_attention"\], where pleat's layers without the window are every N-th/,
      ],
      [
        (c) => (c.quantization_config = { quant_method: "bitsandbytes" }),
        /is quantized with quant_method bitsandbytes; fix: .* or as GPT-OSS's experts are \(quant_method mxfp4\)/,
      ],
      [(c) => (c.attention_bias = false), /has attention_bias false, where pleat's GPT-OSS has the biases of its experts and of q, k, v and o together/],
    ]
    for (const [change, expected] of gptOssCases) expect(refused(["import", "--model-dir", withConfig(gptOss, change), "--out", out])).toMatch(expected)
    expect(existsSync(out)).toBe(false)
  })

  test("tensors", () => {
    const out = path.join(fresh("import-refused"), "ckpt")
    const bias = withTensors(qwen, (t) => {
      const b = t.get("model.layers.0.self_attn.q_proj.bias")
      if (b !== undefined) b.values[0] = 0.5
    })
    expect(refused(["import", "--model-dir", bias, "--out", out])).toMatch(/has a non-zero model\.layers\.0\.self_attn\.q_proj\.bias, a bias pleat's model has not/)
    // Qwen3-MoE's attention_bias puts one on o too: pleat's attention has none, so only zeros import.
    const oBias = withTensors(qwen3, (t) => {
      const b = t.get("model.layers.1.self_attn.o_proj.bias")
      if (b !== undefined) b.values[3] = -0.25
    })
    expect(refused(["import", "--model-dir", oBias, "--out", out])).toMatch(/has a non-zero model\.layers\.1\.self_attn\.o_proj\.bias, a bias pleat's model has not/)
    expect(refused(["import", "--model-dir", withTensors(qwen3, (t) => t.delete("model.layers.0.self_attn.k_norm.weight")), "--out", out])).toMatch(
      /lacks model\.layers\.0\.self_attn\.k_norm\.weight/,
    )
    expect(refused(["import", "--model-dir", withTensors(mixtral, (t) => t.delete("model.norm.weight")), "--out", out])).toMatch(
      /lacks model\.norm\.weight; fix: pass a complete model directory/,
    )
    expect(refused(["import", "--model-dir", withTensors(mixtral, (t) => t.set("model.extra.weight", { shape: [2], values: new Float64Array(2) })), "--out", out])).toMatch(
      /holds model\.extra\.weight, which pleat's mixtral model has no place for/,
    )
    const wrong = withTensors(mixtral, (t) => t.set("model.norm.weight", { shape: [8], values: new Float64Array(8) }))
    expect(refused(["import", "--model-dir", wrong, "--out", out])).toMatch(/has model\.norm\.weight of shape \[8\], where config\.json makes it \[16\]/)
    expect(existsSync(out)).toBe(false)
  })
})

describe("DeepSeek-V3's rotary rows", () => {
  test("read as rope_interleave says: the rows of an export moved into rotate-half order (pairs i, i + 3) under rope_interleave false import into the same parameters (a layer past the model's left out)", async () => {
    // Each head's q_b_proj rows 4..9 (qk_nope_head_dim 4, qk_rope_head_dim 6) and kv_a_proj_with_mqa's rows 8..13 (kv_lora_rank 8).
    const rotateHalf = (x: { shape: ReadonlyArray<number>; values: Float64Array }, every: number, from: number) => {
      const cols = x.shape[1] as number
      const old = Float64Array.from(x.values)
      for (let base = 0; base < (x.shape[0] as number); base += every)
        for (let i = 0; i < 3; i++)
          for (const [to, at] of [
            [i, 2 * i],
            [3 + i, 2 * i + 1],
          ] as const)
            x.values.set(old.subarray((base + from + at) * cols, (base + from + at + 1) * cols), (base + from + to) * cols)
    }
    const moved = withConfig(
      withTensors(deepseek, (t) => {
        for (const [name, x] of t) {
          if (name.endsWith("q_b_proj.weight")) rotateHalf(x, 10, 4)
          if (name.endsWith("kv_a_proj_with_mqa.weight")) rotateHalf(x, 14, 8)
        }
        // A multi-token-prediction module past num_hidden_layers 2, left out as transformers leaves it.
        t.set("model.layers.2.eh_proj.weight", { shape: [16, 32], values: new Float64Array(512) })
      }),
      (c) => (c.rope_interleave = false),
    )
    const imported = await Promise.all(
      [deepseek, moved].map(async (dir) => {
        const out = path.join(fresh("import-rope"), "ckpt")
        expect((await run(["import", "--model-dir", dir, "--out", out, "--dtype", "float64"])).status).toBe(0)
        return Checkpoint.values(out).values
      }),
    )
    const [a, b] = imported
    expect(a?.size).toBe(b?.size)
    for (const [name, t] of a ?? []) expect(b?.get(name)?.data, name).toEqual(t.data)
    // The independent reading turns interleaved pairs in one and rotate-half pairs in the other: the same model.
    expect(lmLoss(readModelDir(moved), window)).toBeCloseTo(lmLoss(readModelDir(deepseek), window), 12)
  }, 60_000)
})
