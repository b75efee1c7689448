// `--dense-first K`: the first K layers dense, then every --moe-every-th layer MoE (DeepSeek-V3's
// first_k_dense_replace; Qwen2-MoE's decoder_sparse_step N is K = N - 1). Which layers hold
// experts (counted here from the rule as stated, not from pleat's isMoe), that a folded mapping
// trains such a model as one rank does (stages without an MoE layer included), that it belongs
// to a checkpoint's identity, that transformers' placements import into it, and the refusals.
import { cpSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ModelFile from "../../src/plan/ModelFile.js"
import * as ModelFlops from "../../src/plan/ModelFlops.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import * as Params from "../../src/train/Params.js"
import { readModelDir } from "../train/hfModelDir.js"
import { lmLoss } from "../train/hfReference.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { records, uint16File } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const small = ["--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]

/** The layers holding experts among a model's parameters. */
const expertLayers = (m: ModelConfig.ModelConfig): Array<number> =>
  Params.specs(m)
    .filter((s) => s.name.endsWith(".experts.wUp"))
    .map((s) => s.layer)

describe("which layers are MoE", () => {
  test("the first K layers are dense, then every N-th from layer K; a model file and the FLOPs count the same layers", () => {
    for (const [layers, denseFirst, moeEvery] of [
      [8, 3, 1],
      [8, 3, 2],
      [8, 1, 2],
      [6, 0, 3],
      [5, 4, 1],
    ] as const) {
      const m = { ...ModelConfig.small, layers, moeEvery, denseFirst }
      const expected = Array.from({ length: layers }, (_, l) => l).filter((l) => l >= denseFirst && (l - denseFirst) % moeEvery === 0)
      expect(expertLayers(m), `K ${denseFirst}, N ${moeEvery}`).toEqual(expected)
      // A dense layer has the dense MLP instead.
      expect(
        Params.specs(m)
          .filter((s) => /^layers\.\d+\.wUp$/.test(s.name))
          .map((s) => s.layer),
      ).toEqual(Array.from({ length: layers }, (_, l) => l).filter((l) => !expected.includes(l)))
      expect(ModelFlops.moeLayers(m)).toBe(expected.length)
      const file = ModelFile.toModel({ vocab: 32, hidden: 32, layers, heads: 4, experts: 8, topk: 2, moeFfn: 32, moeEvery, denseFirst }, "f").model
      expect(expertLayers(file)).toEqual(expected)
    }
    // Absent is 0: every earlier model places its layers as before.
    expect(expertLayers({ ...ModelConfig.small, layers: 6, moeEvery: 2 })).toEqual([0, 2, 4])
  })

  test("the DeepSeek-V3-style preset has its 3 dense layers; scaled, at least one and never all", () => {
    const full = ModelPresets.model("deepseek-v3-style", 1)
    expect(full.denseFirst).toBe(3)
    expect(ModelFlops.moeLayers(full)).toBe(58)
    for (const factor of [2, 4, 16, 64]) {
      const m = ModelPresets.model("deepseek-v3-style", factor)
      expect(m.denseFirst, `scale ${factor}`).toBe(Math.min(Math.ceil(3 / factor), m.layers - 1))
      expect(expertLayers(m)[0]).toBe(m.denseFirst)
    }
    expect(ModelPresets.model("mixtral-8x7b", 4).denseFirst).toBeUndefined()
  })
})

describe("training with leading dense layers", () => {
  test("a folded mapping trains as one rank (pleat verify, float64), a pipeline stage without MoE layers and the MoE state included", async () => {
    // pp 2 with 4 layers, K 2: stage 0 has no MoE layer; expert bias and global_aux keep state per MoE layer.
    const v = await run(["verify", "--dense-first", "2", "--dtype", "float64", "--steps", "2", "--score-function", "sigmoid", "--expert-bias", "--aux-loss", "global_aux:0.01"])
    expect(v.status, v.out + v.err).toBe(0)
    const w = await run(["verify", "--dense-first", "1", "--moe-every", "2", "--dtype", "float64", "--steps", "2", "--vpp", "2", "--layers", "8"])
    expect(w.status, w.out + w.err).toBe(0)
    // The per-layer MoE losses name the MoE layers only.
    const t = await run(["train", ...oneRank, ...small, "--layers", "4", "--dense-first", "2", "--steps", "1"])
    expect(t.status, t.err).toBe(0)
    expect(t.out).toMatch(/MoE losses \(last step, without coefficients\) by layer: layer 2: aux_loss [\d.]+, layer 3: aux_loss [\d.]+\n/)
  }, 120_000)

  test("belongs to a checkpoint's identity", async () => {
    const ckpt = fresh("dense-first")
    expect((await run(["train", ...oneRank, ...small, "--layers", "2", "--dense-first", "1", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.denseFirst).toBe(1)
    const other = await run(["train", ...oneRank, ...small, "--layers", "2", "--steps", "2", "--resume", ckpt])
    expect(other.status).toBe(2)
    expect(other.err).toContain("was saved from another run (denseFirst 1; this run has denseFirst 0)")
    expect((await run(["train", ...oneRank, ...small, "--layers", "2", "--dense-first", "1", "--steps", "2", "--resume", ckpt])).status).toBe(0)
    // Without leading dense layers nothing new is written (earlier checkpoints read the same).
    const plain = fresh("dense-first-none")
    expect((await run(["train", ...oneRank, ...small, "--layers", "2", "--steps", "1", "--save", plain])).status).toBe(0)
    expect(Object.keys(Checkpoint.manifest(plain).model)).not.toContain("denseFirst")
  }, 60_000)

  test("bad values are refused naming the flag and the fix", () => {
    expect(refused(["train", "--dense-first", "4"])).toBe(
      "pleat train: --dense-first: 4 leaves no MoE layer among 4 layers; fix: use a --dense-first below --layers 4; defaults in effect (not given): --layers 4; pass a flag to choose another value",
    )
    expect(refused(["train", "--dense-first", "-1"])).toBe('pleat train: --dense-first: "-1" is not a non-negative integer; fix: write --dense-first 0, 1, 2, ...')
    expect(refused(["train", "--dense-first", "1.5"])).toContain('--dense-first: "1.5" is not a non-negative integer')
  })
})

describe("to and from Hugging Face", () => {
  test("Qwen2-MoE's decoder_sparse_step 2 (MoE layers 1, 3) imports as --dense-first 1 --moe-every 2 and evaluates as an independent reading of it", async () => {
    const flags = [...small, "--layers", "4", "--shared-expert-ffn", "8", "--shared-expert-gate", "--dense-first", "1", "--moe-every", "2", "--dtype", "float64"]
    const ckpt = fresh("sparse-step-src")
    expect((await run(["train", ...oneRank, ...flags, "--steps", "1", "--save", ckpt])).status).toBe(0)
    const exported = path.join(fresh("sparse-step-hf"), "model")
    expect((await run(["export", "--checkpoint", ckpt, "--out", exported, "--dtype", "float64"])).status).toBe(0)
    const config = JSON.parse(readFileSync(path.join(exported, "config.json"), "utf8")) as Record<string, unknown>
    expect([config.decoder_sparse_step, config.mlp_only_layers]).toEqual([1, [0, 2]])
    // The same placement as the Hub's Qwen models write it.
    const stepped = path.join(fresh("sparse-step-copy"), "model")
    cpSync(exported, stepped, { recursive: true })
    writeFileSync(path.join(stepped, "config.json"), JSON.stringify({ ...config, decoder_sparse_step: 2, mlp_only_layers: [] }))
    const out = path.join(fresh("sparse-step-out"), "ckpt")
    expect((await run(["import", "--model-dir", stepped, "--out", out, "--dtype", "float64"])).status).toBe(0)
    const settings = JSON.parse(readFileSync(path.join(out, "model.json"), "utf8")) as Record<string, unknown>
    expect([settings["dense-first"], settings["moe-every"]]).toEqual([1, 2])
    const window = [3, 14, 15, 9, 26, 5, 35, 8, 39]
    const e = await run([
      ...["train", "--world", "4", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2", "--global-batch", "2", "--seq", "8"],
      ...["--config", `${out}/model.json`, "--resume", out, "--steps", "0", "--eval-data", uint16File(window), "--eval-batches", "1", "--log", "json"],
    ])
    expect(e.status, e.err).toBe(0)
    const loss = records(e.out, "eval")[0]?.evalLoss as number
    const reference = lmLoss(readModelDir(stepped), window)
    expect(Math.abs(loss - reference), `pleat ${loss}, reference ${reference}`).toBeLessThan(1e-9)
    // A placement no K and N give is refused by name.
    writeFileSync(path.join(stepped, "config.json"), JSON.stringify({ ...config, decoder_sparse_step: 1, mlp_only_layers: [1] }))
    expect(refused(["import", "--model-dir", stepped, "--out", path.join(fresh("sparse-step-refused"), "ckpt")])).toContain(
      "has MoE layers 0, 2, 3, where pleat's are every N-th from the first K dense layers (--dense-first K --moe-every N)",
    )
    // Mixtral's layers are all MoE.
    expect(refused(["export", "--checkpoint", ckpt, "--out", path.join(fresh("sparse-step-mixtral"), "m"), "--format", "mixtral"])).toContain(
      "it has shared experts (--shared-expert-ffn 8), which Mixtral has not",
    )
  }, 60_000)

  test("a Mixtral-shaped model with leading dense layers is refused by the mixtral format, naming --dense-first", async () => {
    const ckpt = fresh("dense-mixtral")
    expect((await run(["train", ...oneRank, ...small, "--layers", "2", "--dense-first", "1", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(refused(["export", "--checkpoint", ckpt, "--out", path.join(fresh("dense-mixtral-out"), "m"), "--format", "mixtral"])).toContain(
      "it has dense layers (--dense-first 1), where Mixtral's are all MoE",
    )
  }, 60_000)
})
