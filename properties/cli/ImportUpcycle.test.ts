// `pleat import --experts E --topk K`: a dense Llama (3.1's RoPE scaling too) or Qwen3 model directory upcycled to a
// mixture (Megatron-LM's --moe-use-upcycling): every layer's MLP as each of E experts, a router of
// pleat's initialization. At step 0 the checkpoint evaluates as an independent reading of the
// dense model (hfReference, the MLP as one expert always chosen) under one rank and a folded
// mapping; its experts are the dense MLP, its routers `layers.L.router` as a run with the seed
// starts; at granularity G each expert is a scaled cut of the MLP (Megatron-LM's virtual groups);
// it trains and the experts part; what is not a dense model pleat upcycles is refused.
import { mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import { beforeAll, describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ParamInit from "../../src/train/ParamInit.js"
import * as Params from "../../src/train/Params.js"
import { type ModelDir, readModelDir, type Stored } from "../train/hfModelDir.js"
import { lmLoss } from "../train/hfReference.js"
import { writeSafetensors } from "../train/safetensorsBytes.js"
import { evalLoss, fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { records, uint16File } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const small = ["--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]
const window = [3, 14, 15, 9, 26, 5, 35, 8, 39]

/** A pleat-trained model exported as a Hugging Face MoE directory, read. */
const exported = async (flags: ReadonlyArray<string>): Promise<ModelDir> => {
  const ckpt = fresh("upcycle-src")
  expect((await run(["train", ...oneRank, ...small, ...flags, "--steps", "2", "--save", ckpt])).status).toBe(0)
  const out = path.join(fresh("upcycle-hf"), "model")
  expect((await run(["export", "--checkpoint", ckpt, "--out", out])).status).toBe(0)
  return readModelDir(out)
}

/**
 * The dense model of a mixture's directory: its attention, norms and embeddings, and as layer L's
 * MLP its expert L + 1 (a different one a layer), under `type`'s config.json.
 */
const denseOf = (moe: ModelDir, type: "llama" | "qwen3"): ModelDir => {
  const mixtral = moe.config.model_type === "mixtral"
  const tensors = new Map<string, Stored>()
  for (const [name, t] of moe.tensors) if (!/\.(block_sparse_moe|mlp)\./.test(name)) tensors.set(name, t)
  const layers = moe.config.num_hidden_layers as number
  for (let l = 0; l < layers; l++) {
    const expert = mixtral ? `model.layers.${l}.block_sparse_moe.experts.${l + 1}.` : `model.layers.${l}.mlp.experts.${l + 1}.`
    const from = mixtral ? ["w1", "w3", "w2"] : ["gate_proj", "up_proj", "down_proj"]
    ;["gate_proj", "up_proj", "down_proj"].forEach((p, i) => tensors.set(`model.layers.${l}.mlp.${p}.weight`, moe.tensors.get(`${expert}${from[i]}.weight`) as Stored))
  }
  const width = (tensors.get("model.layers.0.mlp.gate_proj.weight") as Stored).shape[0]
  const keep = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "tie_word_embeddings"]
  const config: Record<string, unknown> = { model_type: type, intermediate_size: width, hidden_act: "silu" }
  for (const k of keep) if (moe.config[k] !== undefined) config[k] = moe.config[k]
  if (type === "llama") config.attention_bias = false
  return { config, tensors, files: new Map() }
}

/** `m` written as a directory (F64 safetensors). */
const written = (m: ModelDir): string => {
  const dir = path.join(fresh("upcycle-dense"), "model")
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(m.config))
  writeSafetensors(
    path.join(dir, "model.safetensors"),
    [...m.tensors].map(([name, t]) => ({ name, dtype: "F64", shape: t.shape, bytes: new Uint8Array(Float64Array.from(t.values).buffer) })),
  )
  return dir
}

/** The dense model as the independent reading sees it: a mixture of one expert, the MLP, always chosen. */
const asOneExpert = (m: ModelDir): ModelDir => {
  const llama = m.config.model_type === "llama"
  const tensors = new Map<string, Stored>()
  const hidden = m.config.hidden_size as number
  for (const [name, t] of m.tensors) {
    const match = /^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight$/.exec(name)
    if (match === null) tensors.set(name, t)
    else if (llama) tensors.set(`model.layers.${match[1]}.block_sparse_moe.experts.0.${{ gate: "w1", up: "w3", down: "w2" }[match[2] as "gate"]}.weight`, t)
    else tensors.set(`model.layers.${match[1]}.mlp.experts.0.${match[2]}_proj.weight`, t)
  }
  for (let l = 0; l < (m.config.num_hidden_layers as number); l++)
    tensors.set(llama ? `model.layers.${l}.block_sparse_moe.gate.weight` : `model.layers.${l}.mlp.gate.weight`, {
      dtype: "F64",
      shape: [1, hidden],
      values: new Float64Array(hidden),
    })
  const moe = llama
    ? { model_type: "mixtral", num_local_experts: 1 }
    : { model_type: "qwen3_moe", num_experts: 1, norm_topk_prob: true, mlp_only_layers: [], decoder_sparse_step: 1 }
  return { config: { ...m.config, ...moe, num_experts_per_tok: 1 }, tensors, files: new Map() }
}

let llama: ModelDir
let qwen3: ModelDir
let mixtralDir = ""
beforeAll(async () => {
  const mixtral = await exported(["--experts", "4"])
  mixtralDir = written(mixtral)
  llama = denseOf(mixtral, "llama")
  qwen3 = denseOf(await exported(["--experts", "4", "--qk-norm", "--head-dim", "6"]), "qwen3")
}, 60_000)

describe("pleat import --experts: a dense model upcycled to a mixture", () => {
  test("at step 0 it evaluates as the dense model, on one rank and under a folded mapping; its experts and routers", async () => {
    const tokens = uint16File(window)
    // Llama 3.1's RoPE scaling over a pretraining length of 8 positions: every pair of the 8-token window is scaled.
    const llama31 = {
      ...llama,
      config: { ...llama.config, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } },
    }
    for (const [name, dense] of [
      ["llama", llama],
      ["qwen3", qwen3],
      ["llama3.1", llama31],
    ] as const) {
      const out = path.join(fresh(`upcycle-${name}`), "ckpt")
      const r = await run(["import", "--model-dir", written(dense), "--out", out, "--experts", "4", "--topk", "2", "--seed", "7"])
      expect(r.status, r.err).toBe(0)
      expect(r.out).toContain(`(${name === "qwen3" ? "qwen3-moe" : "mixtral"}, upcycled from a dense model: 4 experts top-2, `)
      const reference = lmLoss(asOneExpert(dense), window)
      for (const mapping of [oneRank, ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2"]]) {
        const loss = await evalLoss([...mapping, "--config", `${out}/model.json`, "--resume", out, "--steps", "0", "--seq", "8", "--global-batch", "2"], tokens)
        // float32 weights of float64 values: the reading's loss to float32 rounding.
        expect(Math.abs(loss - reference), `${name} ${mapping.join(" ")}`).toBeLessThan(2e-5)
      }
      const saved = Checkpoint.values(out).values
      const model = Checkpoint.manifest(out).model
      expect([model.experts, model.topk]).toEqual([4, 2])
      for (let l = 0; l < 2; l++) {
        const gate = dense.tensors.get(`model.layers.${l}.mlp.gate_proj.weight`) as Stored
        const [f, h] = gate.shape as [number, number]
        const experts = Array.from(saved.get(`layers.${l}.experts.wGate`)?.data ?? [])
        // Expert e's [h, f] block is the dense gate_proj transposed (in float32).
        for (let e = 0; e < 4; e++)
          for (let i = 0; i < h; i++) for (let j = 0; j < f; j++) expect(experts[e * h * f + i * f + j]).toBe(Math.fround(gate.values[j * h + i] as number))
        const spec = Params.specs({ ...(Checkpoint.manifest(out).model as Parameters<typeof Params.specs>[0]) }).find((s) => s.name === `layers.${l}.router`) as Params.ParamSpec
        expect(Array.from(saved.get(`layers.${l}.router`)?.data ?? [])).toEqual(Array.from(ParamInit.initial(spec, 7, "float32").data))
      }
    }
  }, 120_000)

  test("granularity G: expert r G + g is cut g of the MLP times G^(1/3), a copy's G experts route alike", async () => {
    const out = path.join(fresh("upcycle-granular"), "ckpt")
    const r = await run(["import", "--model-dir", written(qwen3), "--out", out, "--experts", "4", "--topk", "2", "--granularity", "2"])
    expect(r.status, r.err).toBe(0)
    const saved = Checkpoint.values(out).values
    const model = Checkpoint.manifest(out).model
    const gate = qwen3.tensors.get("model.layers.1.mlp.gate_proj.weight") as Stored
    const down = qwen3.tensors.get("model.layers.1.mlp.down_proj.weight") as Stored
    const [f, h] = gate.shape as [number, number]
    const cut = f / 2
    expect([model.experts, model.moeFfn]).toEqual([4, cut])
    const scale = 2 ** (1 / 3)
    const wGate = saved.get("layers.1.experts.wGate")?.data as ArrayLike<number>
    const wDown = saved.get("layers.1.experts.wDown")?.data as ArrayLike<number>
    for (let e = 0; e < 4; e++) {
      const g = e % 2
      // pleat's wGate [E, H, F/G]: hidden i, unit j of cut g is gate_proj's row g F/G + j.
      for (let i = 0; i < h; i++) for (let j = 0; j < cut; j++) expect(wGate[e * h * cut + i * cut + j]).toBe(Math.fround(scale * (gate.values[(g * cut + j) * h + i] as number)))
      // wDown [E, F/G, H]: unit j of cut g, output i is down_proj's [i, g F/G + j].
      for (let j = 0; j < cut; j++) for (let i = 0; i < h; i++) expect(wDown[e * cut * h + j * h + i]).toBe(Math.fround(scale * (down.values[i * f + g * cut + j] as number)))
    }
    // The router [H, E]: experts 2j and 2j + 1 share column j of the initial router's.
    const spec = Params.specs(model as Parameters<typeof Params.specs>[0]).find((s) => s.name === "layers.1.router") as Params.ParamSpec
    const initial = ParamInit.initial(spec, 1, "float32").data
    const router = saved.get("layers.1.router")?.data as ArrayLike<number>
    for (let i = 0; i < h; i++) for (let e = 0; e < 4; e++) expect(router[i * 4 + e]).toBe(initial[i * 4 + Math.floor(e / 2)])
    expect(refused(["import", "--model-dir", written(qwen3), "--out", path.join(fresh("upcycle-refused"), "c"), "--experts", "4", "--granularity", "3"])).toMatch(
      /^pleat import: --granularity: 3 does not cut the MLP's \d+ hidden units and the 4 experts into whole parts/,
    )
    expect(refused(["import", "--model-dir", written(qwen3), "--out", path.join(fresh("upcycle-refused"), "c"), "--granularity", "2"])).toMatch(
      /^pleat import: --granularity: 2 cuts the experts --experts makes/,
    )
  }, 60_000)

  test("it trains and the experts part", async () => {
    const out = path.join(fresh("upcycle-train"), "ckpt")
    expect((await run(["import", "--model-dir", written(llama), "--out", out, "--experts", "4"])).status).toBe(0)
    const trained = path.join(fresh("upcycle-trained"), "ckpt")
    const r = await run([
      "train",
      ...oneRank,
      "--config",
      `${out}/model.json`,
      "--resume",
      out,
      "--steps",
      "3",
      "--seq",
      "8",
      "--global-batch",
      "2",
      "--save",
      trained,
      "--log",
      "json",
    ])
    expect(r.status, r.err).toBe(0)
    expect(records(r.out, "step").every((s) => Number.isFinite(s.loss))).toBe(true)
    const w = Array.from(Checkpoint.values(trained).values.get("layers.0.experts.wGate")?.data ?? [])
    const size = w.length / 4
    expect(w.slice(0, size)).not.toEqual(w.slice(size, 2 * size))
  }, 60_000)

  test("what is not a dense model pleat upcycles is refused", () => {
    const out = () => path.join(fresh("upcycle-refused"), "ckpt")
    expect(refused(["import", "--model-dir", mixtralDir, "--out", out(), "--experts", "4"])).toMatch(
      /^pleat import: --experts: 4 upcycles a dense model, and the model is a mixtral mixture already; fix: drop --experts/,
    )
    const dense = written(llama)
    expect(refused(["import", "--model-dir", dense, "--out", out(), "--topk", "2"])).toMatch(/^pleat import: --topk: 2 routes the experts --experts makes/)
    expect(refused(["import", "--model-dir", dense, "--out", out(), "--experts", "4", "--topk", "5"])).toMatch(/^pleat import: --topk: 5 is not between 1 and the 4 experts/)
    expect(refused(["import", "--model-dir", dense, "--out", out(), "--experts", "1"])).toMatch(/^pleat import: --experts: 1 is not a number of experts of 2 or more/)
    const gpt2 = written({ ...llama, config: { ...llama.config, model_type: "gpt2" } })
    expect(refused(["import", "--model-dir", gpt2, "--out", out(), "--experts", "4"])).toMatch(
      /^pleat import: --experts: 4 upcycles a Llama, Mistral or Qwen3 model, and the model is gpt2/,
    )
    // Without --experts a dense model is refused as before.
    expect(refused(["import", "--model-dir", dense, "--out", out()])).toMatch(/holds a dense llama model; fix: pass --experts E \(and --topk K\) to upcycle it/)
  })
})
