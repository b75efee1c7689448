// `--mtp-num-layers D` (DeepSeek-V3's multi-token prediction, Megatron's semantics): folded
// mappings train as one rank does (pleat verify, float64: tp with sequence parallelism, cp 2 and 4, pp with
// the embedding's copy on the last stage, vpp, untied embeddings, dense and MoE MTP blocks,
// expert bias, full recompute, the distributed optimizer on a device, worker threads); a weight
// of 0 trains exactly as the model without MTP; the objective adds (weight / D) x each depth's
// loss, an evaluation reports the language model's alone and each depth's beside it; depth 1 learns the token two places ahead (on data where only that one is predictable
// half the time, its loss settles between the misaligned targets'); the shifted tokens;
// checkpoint identity; deepseek-v3 and glm4-moe export and import (the layers past the last, their
// copies of the embedding checked; without them no MTP), other formats' refusal; FLOPs; refusals.
import * as Schema from "effect/Schema"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cluster from "../../src/plan/Cluster.js"
import * as MemoryModel from "../../src/plan/MemoryModel.js"
import * as ModelFile from "../../src/plan/ModelFile.js"
import * as ModelFlops from "../../src/plan/ModelFlops.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import * as MultiTokenPrediction from "../../src/model/MultiTokenPrediction.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Safetensors from "../../src/train/Safetensors.js"
import * as StepFlops from "../../src/train/StepFlops.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { records, uint16File, walk } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const small = ["--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]

/** The step records of a --log json run. */
const steps = (out: string) => records(out, "step") as unknown as Array<{ loss: number; moe: Array<{ layer: number; losses: Record<string, number> }> }>

describe("training with multi-token prediction", () => {
  test("folded mappings train as one rank (pleat verify, float64)", async () => {
    const cases = [
      // The default mapping: cp 2 (the shifted tokens from the whole sequences, each rank's share of the loss).
      ["--mtp-num-layers", "1"],
      ["--world", "8", "--tp", "2", "--cp", "4", "--pp", "1", "--ep", "4", "--seq", "32", "--mtp-num-layers", "2", "--untie-embeddings"],
      ["--world", "4", "--ep", "2", "--mtp-num-layers", "1"],
      ["--world", "4", "--ep", "2", "--mtp-num-layers", "2", "--untie-embeddings", "--vpp", "2", "--layers", "8", "--recompute", "full"],
      ["--world", "4", "--ep", "2", "--mtp-num-layers", "1", "--moe-every", "2", "--score-function", "sigmoid", "--expert-bias"],
      ["--world", "4", "--ep", "2", "--mtp-num-layers", "2", "--multi-latent-attention", "--distributed-optimizer", "--device", "sim"],
      ["--world", "4", "--tp", "2", "--pp", "1", "--ep", "4", "--mtp-num-layers", "1", "--backend", "threads"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", ...(flags.includes("--cp") || !flags.includes("--world") ? [] : ["--cp", "1"]), "--dtype", "float64", "--steps", "2", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
  }, 300_000)

  test("weight 0 trains exactly as without MTP; otherwise the objective adds weight / D times each depth's loss", async () => {
    // Without aux losses: an MTP layer's MoE layer adds its own, as every MoE layer does.
    const base = ["train", ...oneRank, ...small, "--layers", "2", "--dtype", "float64", "--aux-loss", "none", "--log", "json"]
    const plain = steps((await run([...base, "--steps", "4"])).out)
    const off = steps((await run([...base, "--steps", "4", "--mtp-num-layers", "2", "--mtp-loss-scaling-factor", "0"])).out)
    expect(off.map((s) => s.loss)).toEqual(plain.map((s) => s.loss))
    // Step 1 starts from the same weights: the difference of the losses is the MTP term.
    const on = steps((await run([...base, "--steps", "1", "--mtp-num-layers", "2", "--mtp-loss-scaling-factor", "0.5"])).out)[0]
    const depths = (on?.moe ?? []).filter((l) => l.layer >= 2).map((l) => l.losses.mtp_loss as number)
    expect(depths).toHaveLength(2)
    expect((on?.loss as number) - (off[0]?.loss as number)).toBeCloseTo((0.5 / 2) * ((depths[0] as number) + (depths[1] as number)), 12)
    // An evaluation reports the language model's loss alone: as without MTP, from the same weights.
    const heldOut = ["--steps", "0", "--eval-data", uint16File(walk(400, 3)), "--eval-batches", "2"]
    const evalLoss = async (flags: ReadonlyArray<string>) => records((await run([...base, ...heldOut, ...flags])).out, "eval")[0]?.evalLoss
    const [withMtp, without] = [await evalLoss(["--mtp-num-layers", "2", "--mtp-loss-scaling-factor", "0.5"]), await evalLoss([])]
    expect(without).toBeGreaterThan(1)
    expect(withMtp).toBe(without)
    // It reports each depth's loss beside it: on the sequences step 1 trains on, from the same
    // weights, the training's statistics of the depths.
    const file = uint16File(walk(400, 5))
    const mtp = ["--mtp-num-layers", "2"]
    const trained = steps((await run([...base, "--steps", "1", "--data", file, ...mtp])).out)[0]
    const evaluated = records((await run([...base, "--steps", "0", "--eval-data", file, "--eval-batches", "1", ...mtp])).out, "eval")[0] as unknown as {
      evalMtpLoss: Array<number>
    }
    const stats = (trained?.moe ?? []).filter((l) => l.layer >= 2).map((l) => l.losses.mtp_loss as number)
    expect(evaluated.evalMtpLoss).toHaveLength(2)
    evaluated.evalMtpLoss.forEach((loss, k) => expect(Math.abs(loss - (stats[k] as number))).toBeLessThan(1e-12))
    // The same on 8 folded ranks (tp 2 x cp 2 x pp 2; MTP on the last stage, its shares over tp and cp).
    const folded = records(
      (
        await run([
          "train",
          "--world",
          "8",
          ...small,
          "--layers",
          "2",
          "--dtype",
          "float64",
          "--aux-loss",
          "none",
          "--log",
          "json",
          "--steps",
          "0",
          "--eval-data",
          file,
          "--eval-batches",
          "1",
          ...mtp,
        ])
      ).out,
      "eval",
    )[0] as unknown as { evalMtpLoss: Array<number> }
    folded.evalMtpLoss.forEach((loss, k) => expect(Math.abs(loss - (stats[k] as number))).toBeLessThan(1e-12))
  }, 60_000)

  test("depth 1 predicts the token two places ahead", async () => {
    // Pairs (a, g(a)): a random in 0..7, g(a) = 8 + (3a + 1) mod 8. Two places ahead of a
    // token is predictable after a pair's first half (its own g) and random after its second
    // (the next a): a mean loss near ln(8) / 2 = 1.04. Aligned one place ahead (the given
    // next token) it would near 0; three places ahead, ln 8 = 2.08.
    let state = 12345
    const ids: Array<number> = []
    while (ids.length < 40_000) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      const a = (state >>> 16) % 8
      ids.push(a, 8 + ((3 * a + 1) % 8))
    }
    const data = uint16File(ids)
    const flags = [...oneRank, "--hidden", "32", "--seq", "16", "--vocab", "16", "--layers", "2", "--global-batch", "8", "--data", data]
    const r = await run(["train", ...flags, "--steps", "150", "--lr", "0.01", "--mtp-num-layers", "1", "--log", "json"])
    expect(r.status, r.err).toBe(0)
    const last = steps(r.out).slice(-10)
    const mtp = last.reduce((s, x) => s + (x.moe.find((l) => l.layer === 2)?.losses.mtp_loss as number), 0) / last.length
    expect(mtp).toBeGreaterThan(0.6)
    expect(mtp).toBeLessThan(1.6)
  }, 120_000)

  test("the shifted tokens: ids zero-filled and labels ignored past each sequence's end (left-out labels move with theirs), kept ones counted", () => {
    const tokens = { ids: Int32Array.from([1, 2, 3, 4, 5, 6]), targets: Int32Array.from([2, 3, 4, 5, 6, 7]) }
    expect(MultiTokenPrediction.shifted(tokens, 3, 1)).toEqual({ ids: Int32Array.from([2, 3, 0, 5, 6, 0]), targets: Int32Array.from([3, 4, -100, 6, 7, -100]), labels: 4 })
    expect(MultiTokenPrediction.shifted(tokens, 3, 2)).toEqual({ ids: Int32Array.from([3, 0, 0, 6, 0, 0]), targets: Int32Array.from([4, -100, -100, 7, -100, -100]), labels: 2 })
    const masked = { ids: tokens.ids, targets: Int32Array.from([2, -100, 4, 5, 6, -100]) }
    expect(MultiTokenPrediction.shifted(masked, 3, 1)).toEqual({ ids: Int32Array.from([2, 3, 0, 5, 6, 0]), targets: Int32Array.from([-100, 4, -100, 6, -100, -100]), labels: 2 })
  })

  test("belongs to a checkpoint's identity", async () => {
    const ckpt = fresh("mtp")
    const saved = await run(["train", ...oneRank, ...small, "--layers", "2", "--mtp-num-layers", "1", "--steps", "1", "--save", ckpt])
    expect(saved.status).toBe(0)
    expect(saved.out).toMatch(/^pleat train: 2 layers \(\+1 multi-token prediction\), 8 experts top-2, 1 ranks/)
    expect(Checkpoint.manifest(ckpt).model.mtpLayers).toBe(1)
    // Formats other than deepseek-v3 and glm4-moe hold no MTP layers: export says so, dropping nothing.
    const exported = await run(["export", "--checkpoint", ckpt, "--out", `${fresh("mtp-export")}/out`, "--format", "mixtral"])
    expect(exported.status).toBe(2)
    expect(exported.err).toContain("it has multi-token prediction layers (--mtp-num-layers 1), which Mixtral has not (deepseek-v3 and glm4-moe hold them as layers past the last)")
    const without = await run(["train", ...oneRank, ...small, "--layers", "2", "--steps", "2", "--resume", ckpt])
    expect(without.status).toBe(2)
    expect(without.err).toContain("(mtpLayers 1; this run has mtpLayers 0)")
    const weighted = await run(["train", ...oneRank, ...small, "--layers", "2", "--mtp-num-layers", "1", "--mtp-loss-scaling-factor", "0.3", "--steps", "2", "--resume", ckpt])
    expect(weighted.status, weighted.err).toBe(0)
  }, 60_000)

  test("deepseek-v3 export writes them as DeepSeek's layers past the last, and import reads them back bit for bit", async () => {
    const flags = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--model", "deepseek-v3", "--scale", "64", "--seq", "16", "--vocab", "40"]
    const ckpt = fresh("mtp-hf")
    expect((await run(["train", ...flags, "--mtp-num-layers", "1", "--steps", "3", "--dtype", "float64", "--save", ckpt])).status).toBe(0)
    const hf = path.join(fresh("mtp-hf-out"), "model")
    expect((await run(["export", "--checkpoint", ckpt, "--out", hf, "--dtype", "float64"])).status).toBe(0)
    const config = JSON.parse(readFileSync(path.join(hf, "config.json"), "utf8")) as { num_hidden_layers: number; num_nextn_predict_layers: number }
    expect([config.num_hidden_layers, config.num_nextn_predict_layers]).toEqual([2, 1])
    const tensors = Safetensors.read(readFileSync(path.join(hf, "model.safetensors")))
    for (const name of ["embed_tokens", "enorm", "hnorm", "eh_proj", "shared_head.norm", "shared_head.head", "self_attn.kv_b_proj", "mlp.gate"])
      expect(tensors.has(`model.layers.2.${name}.weight`), name).toBe(true)
    const back = path.join(fresh("mtp-hf-back"), "ckpt")
    expect((await run(["import", "--model-dir", hf, "--out", back, "--dtype", "float64"])).status).toBe(0)
    expect(Checkpoint.manifest(back).model.mtpLayers).toBe(1)
    const [before, after] = [Checkpoint.values(ckpt).values, Checkpoint.values(back).values]
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort())
    for (const [name, t] of before) expect(Tensor.toArray(after.get(name) as Tensor.Tensor), name).toEqual(Tensor.toArray(t))
    // A copy of the embedding unlike the model's is refused: pleat's MTP layers share it.
    const bytes = readFileSync(path.join(hf, "model.safetensors"))
    // The copy's first value, where the file's header says its bytes start.
    const headerLength = Number(bytes.readBigUInt64LE(0))
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { data_offsets: [number, number] }>
    const at = 8 + headerLength + (header["model.layers.2.embed_tokens.weight"]?.data_offsets[0] as number)
    new DataView(bytes.buffer, bytes.byteOffset + at, 8).setFloat64(0, 123.5, true)
    expect(Safetensors.read(bytes).get("model.embed_tokens.weight")?.values[0]).not.toBe(123.5)
    writeFileSync(path.join(hf, "model.safetensors"), bytes)
    // Found as the parameters are written (an import holds one at a time): nothing of it stays,
    // neither a new directory nor anything in an empty one given.
    const badOut = path.join(fresh("mtp-hf-bad"), "ckpt")
    const refusedImport = await run(["import", "--model-dir", hf, "--out", badOut])
    expect(refusedImport.status).toBe(2)
    expect(refusedImport.err).toContain("holds model.layers.2.embed_tokens.weight unlike model.embed_tokens.weight, where pleat's model shares one embedding")
    expect(existsSync(badOut)).toBe(false)
    const emptyOut = fresh("mtp-hf-empty")
    expect((await run(["import", "--model-dir", hf, "--out", emptyOut])).status).toBe(2)
    expect(readdirSync(emptyOut)).toEqual([])
    // The output layer's copy (transposed on import, a slab of rows at a time) compared to its
    // last element: the embedding's copy restored, the head's last value changed.
    new DataView(bytes.buffer, bytes.byteOffset + at, 8).setFloat64(0, tensors.get("model.embed_tokens.weight")?.values[0] as number, true)
    const headEnd = 8 + headerLength + (header["model.layers.2.shared_head.head.weight"]?.data_offsets[1] as number)
    new DataView(bytes.buffer, bytes.byteOffset + headEnd - 8, 8).setFloat64(0, 123.5, true)
    writeFileSync(path.join(hf, "model.safetensors"), bytes)
    expect((await run(["import", "--model-dir", hf, "--out", badOut])).err).toContain(
      "holds lm_head.weight unlike model.layers.2.shared_head.head.weight, where pleat's model shares one output",
    )
    expect(existsSync(badOut)).toBe(false)
  }, 120_000)

  test("glm4-moe export writes them as GLM-4.5's layer past the last, and import reads them back bit for bit", async () => {
    const flags = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--model", "glm-4.5-air", "--scale", "64", "--seq", "16", "--vocab", "40"]
    const ckpt = fresh("mtp-glm")
    const trained = await run(["train", ...flags, "--mtp-num-layers", "1", "--steps", "3", "--dtype", "float64", "--save", ckpt])
    expect(trained.status, trained.err).toBe(0)
    const hf = path.join(fresh("mtp-glm-out"), "model")
    const exported = await run(["export", "--checkpoint", ckpt, "--out", hf, "--dtype", "float64"])
    expect(exported.status, exported.err).toBe(0)
    const config = JSON.parse(readFileSync(path.join(hf, "config.json"), "utf8")) as { model_type: string; num_hidden_layers: number; num_nextn_predict_layers: number }
    const layers = config.num_hidden_layers
    expect([config.model_type, config.num_nextn_predict_layers]).toEqual(["glm4_moe", 1])
    const tensors = Safetensors.read(readFileSync(path.join(hf, "model.safetensors")))
    // GLM's MTP block is one of its MoE layers: q/k/v biases, the router's expert bias, shared experts.
    for (const name of ["embed_tokens", "enorm", "hnorm", "eh_proj", "shared_head.norm", "shared_head.head", "self_attn.q_proj", "mlp.gate", "mlp.shared_experts.up_proj"])
      expect(tensors.has(`model.layers.${layers}.${name}.weight`), name).toBe(true)
    expect(tensors.has(`model.layers.${layers}.self_attn.q_proj.bias`)).toBe(true)
    expect(tensors.has(`model.layers.${layers}.mlp.gate.e_score_correction_bias`)).toBe(true)
    const back = path.join(fresh("mtp-glm-back"), "ckpt")
    const imported = await run(["import", "--model-dir", hf, "--out", back, "--dtype", "float64"])
    expect(imported.status, imported.err).toBe(0)
    expect(Checkpoint.manifest(back).model.mtpLayers).toBe(1)
    const [before, after] = [Checkpoint.values(ckpt).values, Checkpoint.values(back).values]
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort())
    for (const [name, t] of before) expect(Tensor.toArray(after.get(name) as Tensor.Tensor), name).toEqual(Tensor.toArray(t))
    // Without the layer past the last (transformers' own saves), the model imports without MTP.
    const kept = [...tensors].filter(([name]) => !name.startsWith(`model.layers.${layers}.`))
    Safetensors.write(
      path.join(hf, "model.safetensors"),
      kept.map(([name, t]) => ({ name, dtype: "F64" as const, shape: t.shape, bytes: () => Safetensors.encode(Float64Array.from(t.values), "F64") })),
    )
    const plain = path.join(fresh("mtp-glm-plain"), "ckpt")
    expect((await run(["import", "--model-dir", hf, "--out", plain, "--dtype", "float64"])).status).toBe(0)
    expect(Checkpoint.manifest(plain).model.mtpLayers ?? 0).toBe(0)
  }, 120_000)

  test("FLOPs: each MTP layer is a layer, plus its projection and one more output layer", () => {
    const m: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 2, seq: 32 }
    const withMtp = { ...m, mtpLayers: 2 }
    const h = m.hidden
    // pleat's count: two more (MoE) layers, two [2H, H] projections and two output layers, forward x 3.
    const layer = (StepFlops.perStep({ ...m, layers: 3 }, 4) - StepFlops.perStep(m, 4)) / (3 * 4 * m.seq)
    expect(StepFlops.perStep(withMtp, 4)).toBeCloseTo(StepFlops.perStep(m, 4) + 3 * 4 * m.seq * (2 * layer + 2 * 2 * (2 * h) * h + 2 * 2 * h * m.vocab), 6)
    // Megatron's: the same layers, 3 x 2 x D (3h + 2h^2) for the norms and projections, D more logits.
    const megatron = ModelFlops.perStep({ ...m, layers: 4 }, 32, 4) + 4 * 32 * (6 * 2 * (3 * h + 2 * h * h) + 6 * h * m.vocab * 2)
    expect(ModelFlops.perStep(withMtp, 32, 4)).toBeCloseTo(megatron, 3)
    // The planner's memory: the last stage holds one layer's activations and one output layer's logits more per MTP layer.
    const job = {
      modelName: "m",
      model: ModelPresets.model("deepseek-v3", 1),
      cluster: Cluster.presets["dgx-h100"] as Cluster.Cluster,
      gpus: 256,
      seq: 4096,
      globalBatch: 256,
      precision: "bf16" as const,
    }
    const map = { tp: 8, cp: 1, pp: 1, vpp: 1, ep: 32, etp: 1, dp: 32, edp: 8, order: "tp-cp-ep-dp-pp", microBatch: 1, recompute: "none" as const }
    const [plain, predicting] = [MemoryModel.ofMapping(job, map), MemoryModel.ofMapping({ ...job, model: { ...job.model, mtpLayers: 1 } }, map)]
    expect(predicting.activations).toBeGreaterThan(plain.activations)
    expect(predicting.weights).toBeGreaterThan(plain.weights)
    // A plan model file takes them too.
    const file = { hidden: 64, layers: 2, heads: 4, experts: 8, topk: 2, moeFfn: 32, vocab: 32, seq: 32, mtpLayers: 2 }
    expect(ModelFile.toModel(Schema.decodeUnknownSync(ModelFile.ModelFile)(file), "m").model.mtpLayers).toBe(2)
  })

  test("what cannot run is refused naming the flag and the fix", () => {
    expect(refused(["train", "--cp", "1", "--world", "4", "--mtp-num-layers", "16"])).toContain("--mtp-num-layers: 16 leaves no token to predict in sequences of 16")
    expect(refused(["train", "--cp", "1", "--world", "4", "--mtp-num-layers", "1", "--mtp-loss-scaling-factor", "-1"])).toContain(
      "--mtp-loss-scaling-factor: -1 is not a number of 0 or more",
    )
  })
})
