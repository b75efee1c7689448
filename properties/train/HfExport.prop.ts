// `pleat export` writes a checkpoint as a Hugging Face model directory whose forward, computed
// by an independent reading of transformers' Mixtral, Qwen2-MoE, Qwen3-MoE, dots1 and DeepSeek-V3
// (hfReference.ts; DeepSeek-V3's multi-latent attention with and without a query latent), gives the
// loss pleat's own evaluation gives the checkpoint: for random models of both architectures
// (GQA, tied or untied embeddings, dense layers, gated shared experts, renormalized or raw
// probs, q/k/v biases, RoPE bases and norm epsilons), saved and evaluated under random folded mappings, to
// float64 rounding. bfloat16 weights are the
// float32 weights rounded to nearest, ties to even; sharded files hold each tensor once.
// `pleat import` reads the directory back into the same parameters, bit for bit, with a config
// file that trains them: resumed under the case's mapping, the model evaluates to the same loss.
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import { records, uint16File } from "../cli/tokenFiles.js"
import { readModelDir } from "./hfModelDir.js"
import { type Case, cases, casesOf, deepSeekMoe, expectedTensors, headDimOf, hiddenOf, latent, modelFlags, oneRank, qk } from "./hfExportCases.js"
import { lmLoss } from "./hfReference.js"

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  expect(status, `${argv.join(" ")}\n${io.err}`).toBe(0)
  return io.out
}

const fresh = (label: string) => mkdtempSync(path.join(tmpdir(), `pleat-${label}-`))

/** Trains 2 steps under the case's mapping and saves; returns the checkpoint and pleat's loss of the window (evaluated under the same mapping). */
const checkpointAndLoss = async (c: Case) => {
  const dir = fresh("export-ckpt")
  await run(["train", ...c.mapping, ...modelFlags(c), "--steps", "2", "--save", dir, "--log", "json"])
  const evaluated = await run([
    "train",
    ...c.mapping,
    ...modelFlags(c),
    "--steps",
    "2",
    "--resume",
    dir,
    "--eval-data",
    uint16File(c.window),
    "--eval-batches",
    "1",
    "--log",
    "json",
  ])
  return { dir, loss: records(evaluated, "eval")[0]?.evalLoss as number }
}

/**
 * Exports `c`'s checkpoint: the directory holds the format's tensors, its forward (hfReference)
 * gives pleat's loss, and `pleat import` gives the parameters back bit for bit and settings that
 * evaluate to the same loss under the case's mapping.
 */
const exportsAndImports = async (c: Case): Promise<void> => {
  const { dir, loss } = await checkpointAndLoss(c)
  const out = path.join(fresh("export-out"), "model")
  const written = JSON.parse(
    await run(["export", "--checkpoint", dir, "--out", out, "--dtype", "float64", "--json", ...(c.shardBytes === undefined ? [] : ["--max-shard-size", String(c.shardBytes)])]),
  )
  expect(written.format).toBe(
    {
      mixtral: "mixtral",
      qwen2: "qwen2-moe",
      qwen3: "qwen3-moe",
      dots1: "dots1",
      deepseek: "deepseek-v3",
      gptoss: "gpt-oss",
      glm: "glm4-moe",
      deepseek2: "deepseek-v2",
      olmoe: "olmoe",
    }[c.arch],
  )
  const model = readModelDir(out)
  expect(model.tensors.size).toBe(expectedTensors(c))
  expect(written.tensors).toBe(expectedTensors(c))
  expect(model.config.architectures).toEqual([
    {
      mixtral: "MixtralForCausalLM",
      qwen2: "Qwen2MoeForCausalLM",
      qwen3: "Qwen3MoeForCausalLM",
      dots1: "Dots1ForCausalLM",
      deepseek: "DeepseekV3ForCausalLM",
      gptoss: "GptOssForCausalLM",
      glm: "Glm4MoeForCausalLM",
      deepseek2: "DeepseekV2ForCausalLM",
      olmoe: "OlmoeForCausalLM",
    }[c.arch],
  ])
  // Shards: each file within the limit unless it holds one tensor.
  const files = readdirSync(out).filter((f) => f.endsWith(".safetensors"))
  expect(files.length > 1).toBe(c.shardBytes !== undefined && written.weightBytes > c.shardBytes)
  for (const f of files) {
    const held = [...model.files.values()].filter((x) => x === f).length
    if (held > 1) expect(statSync(path.join(out, f)).size - 8).toBeLessThan((c.shardBytes ?? Number.POSITIVE_INFINITY) + 100_000)
  }
  const reference = lmLoss(model, c.window)
  expect(Math.abs(reference - loss), `reference ${reference}, pleat ${loss}`).toBeLessThan(1e-9 * Math.max(1, loss))
  // pleat import reads it back: the same parameters bit for bit, and the settings to train them.
  const back = path.join(fresh("import-out"), "ckpt")
  await run(["import", "--model-dir", out, "--out", back, "--dtype", "float64"])
  const original = Checkpoint.values(dir).values
  const imported = Checkpoint.values(back).values
  // GPT-OSS's sinks come back as learnable ones (zeros where the model had off-by-one sinks: the
  // same softmax), its biases as pleat's (zeros where the model had none).
  const added = [...imported.keys()].filter((name) => !original.has(name))
  const biases = ["bq", "bk", "bv", "bo", "routerBias", "experts.bGate", "experts.bUp", "experts.bDown"]
  const zeroed = c.arch !== "gptoss" ? [] : [...(c.preSoftmax ? ["sinks"] : []), ...(c.qkvBias ? [] : biases)]
  expect(added.sort()).toEqual(
    Array.from({ length: c.layers }, (_, l) => zeroed.map((n) => `layers.${l}.${n}`))
      .flat()
      .sort(),
  )
  for (const name of added) expect(Array.from(imported.get(name)?.data ?? []).every((v) => v === 0)).toBe(true)
  expect([...original.keys()].filter((name) => !imported.has(name))).toEqual([])
  for (const [name, t] of original) expect(imported.get(name)?.data, name).toEqual(t.data)
  const settings = JSON.parse(readFileSync(path.join(back, "model.json"), "utf8")) as Record<string, unknown>
  expect(settings).toMatchObject({ hidden: hiddenOf(c), heads: c.heads, "kv-heads": c.kvHeads, dtype: "float64" })
  if (qk(c)) expect(settings).toMatchObject({ "head-dim": headDimOf(c), "qk-norm": true })
  if (deepSeekMoe(c) && c.arch !== "deepseek2") expect(settings).toMatchObject({ "score-function": "sigmoid", "expert-bias": true })
  if (c.arch === "olmoe") {
    expect(model.config).toMatchObject({ norm_topk_prob: !c.preSoftmax, attention_bias: c.qkvBias, clip_qkv: null })
    expect(settings).toMatchObject({ "qk-norm": true, "qk-norm-over-heads": true })
    expect(settings["pre-softmax"] ?? false).toBe(c.preSoftmax)
  }
  if (c.arch === "deepseek2") {
    const groups = c.qkvBias
    expect(model.config).toMatchObject({ topk_method: groups ? "group_limited_greedy" : "greedy", norm_topk_prob: false, routed_scaling_factor: c.untie ? 2.5 : 1 })
    expect(settings).toMatchObject({ "pre-softmax": true, "aux-loss": "seq_aux:0.001", ...(groups ? { "num-groups": c.experts / 2, "group-topk": 2 } : {}) })
    expect(settings["score-function"] ?? "softmax").toBe("softmax")
    expect(settings["expert-bias"] ?? false).toBe(false)
  }
  if (c.arch === "glm") {
    expect(model.config).toMatchObject({ partial_rotary_factor: 0.5, use_qk_norm: c.preSoftmax, attention_bias: c.qkvBias })
    expect(settings).toMatchObject({ "rotary-percent": 0.5 })
    expect(settings["qk-norm"] ?? false).toBe(c.preSoftmax)
  }
  if (c.arch === "gptoss") expect(settings).toMatchObject({ "quick-geglu": true, "glu-linear-offset": 1, "activation-func-clamp-value": 7, "softmax-type": "learnable" })
  if (latent(c.arch)) {
    expect(model.config).toMatchObject({ q_lora_rank: c.qLora ? 12 : null, kv_lora_rank: 8, qk_nope_head_dim: c.headDim, qk_rope_head_dim: 6, v_head_dim: 5 })
    expect(model.config.rope_interleave).toBe(c.arch === "deepseek" ? true : undefined)
    expect(settings).toMatchObject({ "multi-latent-attention": true, "kv-lora-rank": 8, "qk-head-dim": c.headDim, "qk-pos-emb-head-dim": 6, "v-head-dim": 5 })
    expect(settings["q-lora-rank"]).toBe(c.qLora ? 12 : undefined)
  }
  expect(settings["untie-embeddings"] ?? false).toBe(c.untie)
  const resumed = await run([
    "train",
    ...c.mapping,
    "--config",
    path.join(back, "model.json"),
    "--seq",
    String(c.seq),
    "--global-batch",
    "4",
    "--steps",
    "0",
    "--resume",
    back,
    "--eval-data",
    uint16File(c.window),
    "--eval-batches",
    "1",
    "--log",
    "json",
  ])
  expect(records(resumed, "eval")[0]?.evalLoss).toBe(loss)
}

describe("pleat export", () => {
  test("the exported model's forward (an independent transformers reading) gives pleat's loss of the checkpoint, for any model and mapping", async () => {
    await fc.assert(fc.asyncProperty(cases, exportsAndImports), { numRuns: 14, seed: 20261205 })
  }, 300_000)

  test("GPT-OSS: sinks (learnable, or off-by-one as zeros), the window on every other layer or none, the experts' clamped activation, the biases as zeros, under any mapping", async () => {
    await fc.assert(fc.asyncProperty(casesOf("gptoss"), exportsAndImports), { numRuns: 8, seed: 20261206 })
  }, 300_000)

  test("GLM-4.5: partial RoPE, q/k/v biases and q/k norms or not, dots1's router, under any mapping", async () => {
    await fc.assert(fc.asyncProperty(casesOf("glm"), exportsAndImports), { numRuns: 6, seed: 20261207 })
  }, 300_000)

  test("OLMoE: q and k norms over every head at once (their weights split over tp), biases or not, the top-k renormalized or not, under any mapping", async () => {
    await fc.assert(fc.asyncProperty(casesOf("olmoe"), exportsAndImports), { numRuns: 6, seed: 20261209 })
  }, 300_000)

  test("DeepSeek-V2: multi-latent attention, a softmax over every expert weighted as it is, groups scored by their best expert, scaling, under any mapping", async () => {
    // Groups that limit the choice (4 of 8 experts' groups kept: 2) drawn at least once.
    let limited = false
    await fc.assert(
      fc.asyncProperty(casesOf("deepseek2"), async (c) => {
        limited ||= c.qkvBias && c.experts === 8
        await exportsAndImports(c)
      }),
      { numRuns: 6, seed: 20261208 },
    )
    expect(limited).toBe(true)
  }, 300_000)

  test("DeepSeek-V3: multi-latent attention with a query latent and without (q_lora_rank null), its rotary rows interleaved, under any mapping", async () => {
    const seen = new Set<boolean>()
    await fc.assert(
      fc.asyncProperty(casesOf("deepseek"), async (c) => {
        seen.add(c.qLora)
        await exportsAndImports(c)
      }),
      { numRuns: 6, seed: 20261205 },
    )
    expect([...seen].sort()).toEqual([false, true])
  }, 300_000)

  test("bfloat16 weights are the float32 weights rounded to nearest, ties to even, and the model stays close", async () => {
    const c: Case = {
      arch: "mixtral",
      heads: 4,
      kvHeads: 2,
      headDim: 8,
      layers: 2,
      experts: 4,
      topk: 2,
      untie: true,
      seq: 8,
      moeEvery: 1,
      denseFirst: 0,
      shared: 8,
      preSoftmax: false,
      ropeTheta: undefined,
      qkvBias: false,
      qLora: false,
      normEps: undefined,
      mapping: oneRank,
      shardBytes: undefined,
      window: [1, 5, 9, 2, 33, 7, 0, 12, 39],
    }
    const { dir, loss } = await checkpointAndLoss(c)
    const full = path.join(fresh("export-f32"), "model")
    const half = path.join(fresh("export-bf16"), "model")
    await run(["export", "--checkpoint", dir, "--out", full, "--dtype", "float32"])
    await run(["export", "--checkpoint", dir, "--out", half, "--dtype", "bfloat16"])
    const a = readModelDir(full)
    const b = readModelDir(half)
    expect(b.config.torch_dtype).toBe("bfloat16")
    for (const [name, t] of a.tensors) {
      const h = b.tensors.get(name)
      expect(h?.dtype).toBe("BF16")
      const bits = new Uint32Array(Float32Array.from(t.values).buffer)
      t.values.forEach((_, i) => {
        const x = bits[i] as number
        const rounded = (((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16) >>> 0
        expect(h?.values[i], `${name}[${i}]`).toBe(new Float32Array(new Uint32Array([rounded]).buffer)[0])
      })
    }
    expect(Math.abs(lmLoss(b, c.window) - loss)).toBeLessThan(0.05)
  }, 60_000)
})
