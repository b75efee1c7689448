// `--softmax-type off-by-one|learnable` (Megatron's; softmax sinks, GPT-OSS's learnable ones; the
// op against its definition and finite differences: properties/tensor/AttentionSinks.prop.ts):
// folded mappings train as one rank (pleat verify: float64 with tp 2 x cp 2 x pp 2 and ep, tp 2 x
// cp 4, multi-latent attention with multi-token prediction, selective recompute; float32 on the
// native kernels); the learnable sinks are one parameter per head and layer, start at 0 and move;
// the type is part of a checkpoint's identity; an export to a format without sinks is refused (on a
// device: GptOssOnDevice.test.ts).
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--hidden", "16", "--seq", "16", "--layers", "2"]

describe("softmax sinks (--softmax-type)", () => {
  test("folded mappings train as one rank (pleat verify)", async () => {
    const cases = [
      ["--dtype", "float64", "--softmax-type", "learnable"],
      ["--dtype", "float64", "--softmax-type", "off-by-one"],
      ["--dtype", "float64", "--world", "8", "--tp", "2", "--cp", "4", "--pp", "1", "--ep", "4", "--seq", "32", "--softmax-type", "learnable", "--sliding-window", "9"],
      ["--dtype", "float64", "--softmax-type", "learnable", "--multi-latent-attention", "--mtp-num-layers", "1", "--recompute", "selective"],
      ["--softmax-type", "learnable"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--steps", "2", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
  }, 300_000)

  test("learnable sinks: a parameter per head and layer, from 0; the type belongs to a checkpoint's identity", async () => {
    const sinks = Params.specs({ ...ModelConfig.small, softmaxType: "learnable" }).filter((s) => s.name.endsWith(".sinks"))
    expect(sinks.map((s) => [s.name, s.shape])).toEqual([0, 1, 2, 3].map((l) => [`layers.${l}.sinks`, [ModelConfig.small.heads]]))
    expect(Params.specs({ ...ModelConfig.small, softmaxType: "off-by-one" }).some((s) => s.name.endsWith(".sinks"))).toBe(false)
    const ckpt = fresh("sinks")
    expect((await run(["train", ...oneRank, "--softmax-type", "learnable", "--steps", "3", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.softmaxType).toBe("learnable")
    // Trained: every head's sink has moved from 0.
    const saved = Checkpoint.values(ckpt).values
    for (const l of [0, 1]) {
      const z = Array.from(saved.get(`layers.${l}.sinks`)?.data ?? [])
      expect(z).toHaveLength(ModelConfig.small.heads)
      expect(z.every((x) => x !== 0)).toBe(true)
    }
    const other = await run(["train", ...oneRank, "--steps", "4", "--resume", ckpt])
    expect(other.status).toBe(2)
    expect(other.err).toContain("was saved from another run (softmaxType learnable; this run has softmaxType vanilla)")
    expect((await run(["train", ...oneRank, "--softmax-type", "learnable", "--steps", "4", "--resume", ckpt])).status).toBe(0)
    expect(refused(["train", "--softmax-type", "sink"])).toContain("--softmax-type")
    expect(refused(["export", "--checkpoint", ckpt, "--out", fresh("sinks-export")])).toContain("--softmax-type learnable")
  }, 120_000)
})
