// `--multi-latent-attention` (DeepSeek-V2/V3's MLA) through the command line: folded mappings
// (tp with sequence parallelism, cp, pp, vpp, recompute) train as one rank does (pleat verify,
// float64), the replicated down projections' gradients must be summed over tp (a planted missing
// sum is named), DeepSeek-V3's parameter count, the FLOPs (pleat's count and Megatron's, written
// out here from the formulas), checkpoint identity, plan model files and the refusals; YaRN's
// context extension, Llama 3's RoPE scaling (Megatron-LM's --use-rope-scaling), linear position
// interpolation (--rotary-seq-len-interpolation-factor) and partial RoPE (--rotary-percent)
// through the command line too.
import { writeFileSync } from "node:fs"
import path from "node:path"
import * as Schema from "effect/Schema"
import { afterEach, describe, expect, test } from "vitest"
import * as ModelFile from "../../src/plan/ModelFile.js"
import * as ModelFlops from "../../src/plan/ModelFlops.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import * as Params from "../../src/train/Params.js"
import * as StepFlops from "../../src/train/StepFlops.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const small = ["--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]
const mla = ["--multi-latent-attention", "--q-lora-rank", "12", "--kv-lora-rank", "10", "--qk-head-dim", "6", "--qk-pos-emb-head-dim", "4", "--v-head-dim", "10"]

afterEach(() => {
  delete process.env.PLEAT_FAULT_SKIP_SYNC
})

describe("training with multi-latent attention", () => {
  test("folded mappings train as one rank (pleat verify, float64)", async () => {
    // The default mapping: tp 2 (sequence parallel), cp 2 (the ring), pp 2, ep 2.
    const folded = await run(["verify", ...mla, "--dtype", "float64", "--steps", "2"])
    expect(folded.status, folded.out + folded.err).toBe(0)
    // No query latent, tp 4, interleaved pipeline, full recompute.
    const wide = await run([
      "verify",
      "--multi-latent-attention",
      "--dtype",
      "float64",
      "--steps",
      "2",
      "--tp",
      "4",
      "--cp",
      "1",
      "--vpp",
      "2",
      "--layers",
      "8",
      "--recompute",
      "full",
    ])
    expect(wide.status, wide.out + wide.err).toBe(0)
    // cp 4 by one allgather-free ring, selective recompute (the core recomputed).
    const context = await run([
      "verify",
      ...mla,
      "--dtype",
      "float64",
      "--steps",
      "2",
      "--world",
      "4",
      "--tp",
      "1",
      "--cp",
      "4",
      "--pp",
      "1",
      "--ep",
      "4",
      "--seq",
      "32",
      "--recompute",
      "selective",
    ])
    expect(context.status, context.out + context.err).toBe(0)
  }, 180_000)

  test("a down projection's gradient left unsummed over tp is named", async () => {
    // wkvA is replicated and runs on each tp rank's own tokens (sequence parallelism).
    process.env.PLEAT_FAULT_SKIP_SYNC = "layers.0.wkvA"
    const r = await run(["verify", ...mla, "--dtype", "float64", "--steps", "1", "--world", "2", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2"])
    expect(r.status, r.out + r.err).toBe(1)
    expect(r.out).toMatch(/MISMATCH: the gradient of layers\.0\.wkvA at step 1/)
  }, 60_000)

  test("it learns, and its widths belong to a checkpoint's identity", async () => {
    const ckpt = fresh("mla")
    const trained = await run(["train", ...oneRank, ...small, ...mla, "--layers", "2", "--steps", "30", "--save", ckpt])
    expect(trained.status, trained.err).toBe(0)
    const [first, last] = [/step 1: ([\d.]+)/, /final loss ([\d.]+)/].map((re) => Number(trained.out.match(re)?.[1]))
    expect(last).toBeLessThan((first as number) * 0.8)
    expect(Checkpoint.manifest(ckpt).model.mla).toEqual({ qLoraRank: 12, kvLoraRank: 10, qkHeadDim: 6, qkPosEmbHeadDim: 4, vHeadDim: 10 })
    const without = await run(["train", ...oneRank, ...small, "--layers", "2", "--steps", "31", "--resume", ckpt])
    expect(without.status).toBe(2)
    expect(without.err).toContain("mla (q-lora-rank 12, kv-lora-rank 10, qk-head-dim 6, qk-pos-emb-head-dim 4, v-head-dim 10); this run has kvHeads 2, mla off")
    const narrower = await run(["train", ...oneRank, ...small, ...mla.slice(0, -1), "8", "--layers", "2", "--steps", "31", "--resume", ckpt])
    expect(narrower.status).toBe(2)
    expect(narrower.err).toContain("v-head-dim 8)")
    expect((await run(["train", ...oneRank, ...small, ...mla, "--layers", "2", "--steps", "31", "--resume", ckpt])).status).toBe(0)
  }, 120_000)

  test("bad settings are refused naming the flag and the fix", () => {
    expect(refused(["train", "--q-lora-rank", "16"])).toContain(
      "pleat train: --q-lora-rank: 16 sizes multi-latent attention, which this model does not use; fix: add --multi-latent-attention",
    )
    expect(refused(["train", "--multi-latent-attention", "--kv-heads", "2"])).toContain("--kv-heads: 2 differs from heads = 4")
    expect(refused(["train", "--multi-latent-attention", "--qk-pos-emb-head-dim", "3"])).toBe(
      "pleat train: --qk-pos-emb-head-dim: 3 is odd (RoPE turns pairs of the rotary part's dimensions); fix: pass --qk-pos-emb-head-dim N with N = 2, 4, 6, ...",
    )
    expect(refused(["train", "--multi-latent-attention", "--qk-norm"])).toContain("--qk-norm: true has no per-head q and k to normalize")
    expect(refused(["train", "--multi-latent-attention", "--qkv-bias"])).toContain("--qkv-bias: true has no q, k and v projections to bias")
    expect(refused(["train", "--multi-latent-attention", "--heads", "6", "--hidden", "48", "--tp", "4", "--world", "8", "--cp", "1"])).toContain(
      "--heads: 6 is not divisible by tp = 4",
    )
  })
})

describe("YaRN (--rope-type yarn)", () => {
  test("folded mappings train as one rank with it, grouped-query and multi-latent; a checkpoint records it", async () => {
    const yarn = ["--rope-type", "yarn", "--rotary-scaling-factor", "4", "--original-max-position-embeddings", "4"]
    const gqa = await run(["verify", ...yarn, "--dtype", "float64", "--steps", "2"])
    expect(gqa.status, gqa.out + gqa.err).toBe(0)
    const latent = await run(["verify", ...mla, ...yarn, "--mscale", "1", "--mscale-all-dim", "1", "--dtype", "float64", "--steps", "2"])
    expect(latent.status, latent.out + latent.err).toBe(0)
    const ckpt = fresh("yarn")
    expect((await run(["train", ...oneRank, ...small, ...yarn, "--layers", "2", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.ropeScaling).toEqual({ factor: 4, originalMaxPositions: 4, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 0 })
  }, 120_000)

  test("its settings are refused without it, and it without a factor", () => {
    expect(refused(["train", "--mscale", "2"])).toContain("--mscale: 2 sets YaRN, which this model's RoPE does not use; fix: add --rope-type yarn, or drop --mscale")
    expect(refused(["train", "--rope-type", "yarn"])).toBe(
      'pleat train: --rope-type: "yarn" has no context extension factor; fix: add --rotary-scaling-factor F (DeepSeek-V3\'s 40)',
    )
    expect(refused(["train", "--rope-type", "yarn", "--rotary-scaling-factor", "0.5"])).toContain("--rotary-scaling-factor: 0.5 is not a number of 1 or more")
    expect(refused(["train", "--rope-type", "yarn", "--rotary-scaling-factor", "4", "--beta-slow", "0"])).toContain("--beta-slow: 0 is not a number above 0")
  })
})

/** The RoPE scaling a one-step run of Megatron-LM's names with `flags` saves in its checkpoint. */
const megatronScaling = async (label: string, flags: ReadonlyArray<string>) => {
  const dir = fresh(label)
  const m = await run(["train", "--num-layers", "2", "--num-experts", "4", "--world", "1", ...flags, "--train-iters", "1", "--save", dir])
  expect(m.status, m.err).toBe(0)
  return Checkpoint.manifest(dir).model.ropeScaling
}

describe("Llama 3's RoPE scaling (--rope-type llama3)", () => {
  test("folded mappings train as one rank with it (cp's positions too); a checkpoint records it; Megatron-LM's --use-rope-scaling is it", async () => {
    const llama3 = ["--rope-type", "llama3", "--original-max-position-embeddings", "4"]
    const r = await run(["verify", ...llama3, "--world", "8", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "2", "--dtype", "float64", "--steps", "2"])
    expect(r.status, r.out + r.err).toBe(0)
    const ckpt = fresh("llama3")
    expect((await run(["train", ...oneRank, ...small, ...llama3, "--rotary-scaling-factor", "16", "--layers", "2", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.ropeScaling).toEqual({ type: "llama3", factor: 16, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 4 })
    // Megatron-LM's Llama 3.1 scaling: factor 8 (or --rope-scaling-factor), 1 and 4, 8192 positions.
    expect(await megatronScaling("llama3-megatron", ["--use-rope-scaling", "--rope-scaling-factor", "4"])).toEqual({
      type: "llama3",
      factor: 4,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    })
  }, 120_000)

  test("its settings are refused without it, and out of range", () => {
    expect(refused(["train", "--low-freq-factor", "2"])).toContain("--low-freq-factor: 2 sets Llama 3's scaling, which this model's RoPE does not use; fix: add --rope-type llama3")
    expect(refused(["train", "--rope-type", "llama3", "--beta-fast", "3"])).toContain("--beta-fast: 3 sets YaRN, which this model's RoPE does not use")
    expect(refused(["train", "--rope-type", "llama3", "--low-freq-factor", "4", "--high-freq-factor", "2"])).toContain(
      "--high-freq-factor: 2 is not a number above the low frequency factor 4",
    )
    expect(refused(["train", "--rope-type", "llama3", "--rotary-scaling-factor", "0.5"])).toContain("--rotary-scaling-factor: 0.5 is not a number of 1 or more")
  })
})

describe("linear position interpolation (--rope-type linear)", () => {
  test("folded mappings train as one rank with it; a checkpoint records it; Megatron-LM's --rotary-seq-len-interpolation-factor is it; refusals", async () => {
    const linear = ["--rope-type", "linear", "--rotary-scaling-factor", "4"]
    const r = await run(["verify", ...linear, "--world", "8", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "2", "--dtype", "float64", "--steps", "2"])
    expect(r.status, r.out + r.err).toBe(0)
    const ckpt = fresh("linear")
    expect((await run(["train", ...oneRank, ...small, ...linear, "--layers", "2", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.ropeScaling).toEqual({ type: "linear", factor: 4 })
    // It changes the run: not plain RoPE's losses.
    const losses = async (extra: ReadonlyArray<string>) => stepLosses((await run(["train", ...oneRank, ...small, "--layers", "2", "--steps", "2", "--log", "json", ...extra])).out)
    expect(await losses(linear)).not.toEqual(await losses([]))
    expect(await megatronScaling("linear-megatron", ["--rotary-seq-len-interpolation-factor", "2"])).toEqual({ type: "linear", factor: 2 })
    expect(refused(["train", "--rope-type", "linear"])).toBe(
      'pleat train: --rope-type: "linear" has no interpolation factor; fix: add --rotary-scaling-factor F (positions are divided by F)',
    )
    expect(refused(["train", "--rope-type", "linear", "--rotary-scaling-factor", "2", "--beta-fast", "3"])).toContain(
      "--beta-fast: 3 sets YaRN, which this model's RoPE does not use",
    )
    expect(refused(["train", "--rope-type", "linear", "--rotary-scaling-factor", "-1"])).toContain("--rotary-scaling-factor: -1 is not a number above 0")
  }, 120_000)
})

describe("partial RoPE (--rotary-percent)", () => {
  test("folded mappings train as one rank with it; 1 is plain RoPE; a checkpoint records it; export and bad shares refused", async () => {
    const r = await run(["verify", "--rotary-percent", "0.5", "--world", "8", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "2", "--dtype", "float64", "--steps", "2"])
    expect(r.status, r.out + r.err).toBe(0)
    const losses = async (extra: ReadonlyArray<string>) => stepLosses((await run(["train", ...oneRank, ...small, "--layers", "2", "--steps", "2", "--log", "json", ...extra])).out)
    const plain = await losses([])
    expect(await losses(["--rotary-percent", "1"])).toEqual(plain)
    expect(await losses(["--rotary-percent", "0.5"])).not.toEqual(plain)
    const ckpt = fresh("rotary-percent")
    expect((await run(["train", ...oneRank, ...small, "--rotary-percent", "0.5", "--layers", "2", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.rotaryPercent).toBe(0.5)
    const out = fresh("rotary-percent-export")
    const exported = await run(["export", "--checkpoint", ckpt, "--out", `${out}/model`])
    expect(exported.status).toBe(2)
    expect(exported.err).toContain("its RoPE turns a part of each head (--rotary-percent 0.5)")
    // The default model's heads are 8 wide: 0.125 turns 1 dimension, 0 and 1.5 are no shares.
    expect(refused(["train", "--rotary-percent", "0.125"])).toContain("--rotary-percent: 0.125 turns 1 of each head's 8 dimensions, and RoPE turns pairs")
    expect(refused(["train", "--rotary-percent", "1.5"])).toContain("--rotary-percent: 1.5 is not a share in (0, 1] of each head's width")
    expect(refused(["train", "--rotary-percent", "0.5", "--multi-latent-attention"])).toContain("--rotary-percent: 0.5 has no effect with multi-latent attention")
  }, 120_000)
})

describe("sizes and FLOPs", () => {
  test("DeepSeek-V3's preset holds its 671B parameters (the public count less its 14,848 expert biases, which are not parameters here)", () => {
    const m = ModelPresets.model("deepseek-v3", 1)
    const total = Params.specs(m).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)
    expect(total).toBe(671_026_419_200 - 58 * 256)
    // One layer's attention: q_a, its norm, q_b, kv_a, its norm, kv_b, o (and the layer's input norm).
    const attention = 7168 * 1536 + 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 + 512 * 128 * 256 + 128 * 128 * 7168
    const layer5 = Params.specs(m).filter((s) => s.layer === 5 && /\.(wqA|qANorm|wqB|wkvA|kvANorm|wkvB|wo)$/.test(s.name))
    expect(layer5.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)).toBe(attention)
  })

  test("pleat's count and Megatron's formula, written out", () => {
    const m: ModelConfig.ModelConfig = {
      ...ModelConfig.small,
      hidden: 64,
      heads: 4,
      kvHeads: 4,
      seq: 32,
      layers: 2,
      mla: { qLoraRank: 24, kvLoraRank: 16, qkHeadDim: 8, qkPosEmbHeadDim: 4, vHeadDim: 12 },
    }
    // Per token, forward: 2 x (x WqA, cq WqB, x WkvA, ckv WkvB, attn Wo) plus the causal core over ~seq/2 keys.
    const projections = 64 * 24 + 24 * 4 * 12 + 64 * (16 + 4) + 16 * 4 * (8 + 12) + 4 * 12 * 64
    expect(StepFlops.attentionPerToken(m)).toBe(2 * projections + 4 * (12 + 12) * 32)
    const noLatent = { ...m, mla: { ...(m.mla as NonNullable<ModelConfig.ModelConfig["mla"]>), qLoraRank: 0 } }
    expect(StepFlops.attentionPerToken(noLatent)).toBe(2 * (projections - 64 * 24 - 24 * 4 * 12 + 64 * 4 * 12) + 4 * 24 * 32)
    // Megatron: 6 B s l (q_term + kv_term + h dr + n dv h + s n (dn + dr) / 2 + s n dv / 2) for the attention.
    const megatronAttention = (q: number) => 6 * 8 * 32 * 2 * (q + 16 * (64 + 4 * 20 + 1) + 64 * 4 + 4 * 12 * 64 + (32 * 4 * 12) / 2 + (32 * 4 * 12) / 2)
    const rest = ModelFlops.perStep({ ...m, mla: undefined, heads: 4, kvHeads: 4 }, 32, 8) - 12 * 8 * 32 * 2 * 64 * 64 * (1 + 1 + 32 / 128)
    expect(ModelFlops.perStep(m, 32, 8)).toBeCloseTo(megatronAttention(24 * (64 + 4 * 12 + 1)) + rest, 3)
    expect(ModelFlops.perStep(noLatent, 32, 8)).toBeCloseTo(megatronAttention(64 * 4 * 12) + rest, 3)
  })

  test("a plan model file takes the widths, kvHeads following heads", async () => {
    const mlaWidths = { kvLoraRank: 512, qkHeadDim: 128, qkPosEmbHeadDim: 64, vHeadDim: 128 }
    const json = { hidden: 7168, layers: 61, heads: 128, experts: 256, topk: 8, moeFfn: 2048, vocab: 129280, seq: 4096, mla: mlaWidths }
    const decoded = ModelFile.toModel(Schema.decodeUnknownSync(ModelFile.ModelFile)(json), "m")
    expect(decoded.model.mla).toEqual({ qLoraRank: 0, ...mlaWidths })
    expect(decoded.model.kvHeads).toBe(128)
    // pleat plan reads it and counts the MLA FLOPs (Megatron's) in its MFU.
    const file = path.join(fresh("mla-plan"), "model.json")
    writeFileSync(file, JSON.stringify({ ...json, mla: { ...mlaWidths, qLoraRank: 1536 } }))
    const plan = await run(["plan", "--model", file, "--gpus", "1024", "--global-batch", "4096", "--json"])
    expect(plan.status, plan.err).toBe(0)
  })
})
