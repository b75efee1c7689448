// `--quick-geglu`, `--glu-linear-offset F`, `--activation-func-clamp-value F` (Megatron-Core's
// names; GPT-OSS's activation is all three: alpha 1.702, offset 1, limit 7; the op against its
// definition and finite differences: properties/tensor/GatedActivation.prop.ts): folded mappings
// train as one rank with it in every gated MLP (pleat verify in float64 with dense layers, shared
// experts and expert tensor parallelism; float32 on the host kernels); each flag reaches the model
// (the first step's loss moves with each); the default model learns with GPT-OSS's activation; it
// is part of a checkpoint's identity; bad values and an export to a SwiGLU format are refused (on a
// device: GptOssOnDevice.test.ts).
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const gptOss = ["--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "7"]

describe("the gated MLPs' activation (--quick-geglu, --glu-linear-offset, --activation-func-clamp-value)", () => {
  test("folded mappings train as one rank (pleat verify)", async () => {
    const cases = [
      // A clamp of 0.05 binds on most elements of this small model: the clamp's gradient rule is exercised.
      ["--dtype", "float64", "--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "0.05", "--shared-expert-ffn", "32", "--dense-first", "1"],
      ["--dtype", "float64", ...gptOss, "--world", "8", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2", "--etp", "2", "--recompute", "selective"],
      ["--dtype", "float64", "--glu-linear-offset", "-0.5", "--dispatcher", "allgather", "--recompute", "full"],
      [...gptOss, "--shared-expert-ffn", "32"],
      // The GPT-OSS preset: the activation with sinks, the window on every other layer and YaRN unrounded.
      ["--dtype", "float64", "--model", "gpt-oss-20b", "--scale", "64"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--steps", "2", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
  }, 300_000)

  test("each flag reaches the model, and the default model learns with GPT-OSS's activation", async () => {
    const first = async (flags: ReadonlyArray<string>) => {
      const r = await run(["train", "--steps", "1", "--dtype", "float64", "--log", "json", "--dense-first", "1", "--shared-expert-ffn", "32", ...flags])
      expect(r.status, r.err).toBe(0)
      return stepLosses(r.out)[0] as number
    }
    const plain = await first([])
    // A clamp small enough to bind in this model's first step.
    for (const flags of [["--quick-geglu"], ["--glu-linear-offset", "1"], ["--activation-func-clamp-value", "0.05"]]) expect(await first(flags), flags.join(" ")).not.toBe(plain)
    // A clamp far above every value changes nothing.
    expect(await first(["--activation-func-clamp-value", "1e6"])).toBe(plain)
    const trained = await run(["train", "--steps", "30", ...gptOss, "--log", "json"])
    expect(trained.status, trained.err).toBe(0)
    const losses = stepLosses(trained.out)
    expect(losses).toHaveLength(30)
    expect(losses[29] as number).toBeLessThan((losses[0] as number) - 0.5)
  }, 300_000)

  test("the activation is part of a checkpoint's identity; bad values and an export are refused", async () => {
    const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2"]
    const ckpt = fresh("glu")
    expect((await run(["train", ...oneRank, ...gptOss, "--steps", "2", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.glu).toEqual({ alpha: 1.702, offset: 1, limit: 7 })
    const other = await run(["train", ...oneRank, "--quick-geglu", "--steps", "3", "--resume", ckpt])
    expect(other.status).toBe(2)
    expect(other.err).toContain("glu (alpha 1.702, offset 1, limit 7); this run has glu (alpha 1.702, offset 0, limit none)")
    expect((await run(["train", ...oneRank, ...gptOss, "--steps", "3", "--resume", ckpt])).status).toBe(0)
    expect(refused(["train", "--activation-func-clamp-value", "0"])).toMatch(/^pleat train: --activation-func-clamp-value: 0 is not a finite number above 0/)
    expect(refused(["train", "--activation-func-clamp-value", "-7"])).toContain("--activation-func-clamp-value")
    expect(refused(["export", "--checkpoint", ckpt, "--out", fresh("glu-export")])).toContain("activation is not SwiGLU")
  }, 120_000)
})
