// `--head-dim D` (a head width other than hidden / heads, as Qwen3's 128 with hidden 2048 and 32
// heads) and `--qk-norm` (an RMSNorm over each head's q and k before RoPE): a folded mapping
// trains such a model as one rank does (the q/k norm weights' gradients summed over tp, whose
// ranks hold different heads), both shape the parameters and belong to a checkpoint's identity,
// and a head width RoPE cannot turn is refused before any work. That pleat's forward with them
// is transformers' Qwen3-MoE is HfExport.prop's (an independent reading) and the export tests'.
// `--qk-l2-norm` (Llama 4's, Megatron's L2Norm) is that norm with its weights fixed at 1.
import { describe, expect, test } from "vitest"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Params from "../../src/train/Params.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const small = ["--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40", "--layers", "2"]

describe("a head width of its own, and q/k norms", () => {
  test("shape the attention's parameters: wq [H, heads x D], wo [heads x D, H], qNorm and kNorm [D], no weight decay on the norms", () => {
    const m = { ...ModelConfig.small, hidden: 32, heads: 4, kvHeads: 2, headDim: 12, qkNorm: true }
    const shape = (name: string) => Params.specs(m).find((s) => s.name === name)?.shape
    expect([shape("layers.0.wq"), shape("layers.0.wk"), shape("layers.0.wo"), shape("layers.0.qNorm"), shape("layers.0.kNorm")]).toEqual([[32, 48], [32, 24], [48, 32], [12], [12]])
    const c = Optimizer.defaults(10)
    const norm = Params.specs(m).find((s) => s.name === "layers.1.kNorm") as Params.ParamSpec
    expect(Optimizer.decayOf(c, norm)).toBe(0)
    expect(Params.specs({ ...ModelConfig.small }).some((s) => s.name.endsWith("qNorm"))).toBe(false)
  })

  test("a folded mapping trains as one rank (pleat verify, float64; tp 2 x cp 2 x pp 2, and with q/k/v biases)", async () => {
    for (const extra of [[], ["--qkv-bias", "--heads", "8", "--kv-heads", "4"]]) {
      const v = await run(["verify", "--head-dim", "6", "--qk-norm", "--dtype", "float64", "--steps", "2", ...extra])
      expect(v.status, v.out + v.err).toBe(0)
    }
  }, 60_000)

  test("belong to a checkpoint's identity", async () => {
    const ckpt = fresh("head-dim")
    expect((await run(["train", ...oneRank, ...small, "--head-dim", "6", "--qk-norm", "--steps", "1", "--save", ckpt])).status).toBe(0)
    const without = await run(["train", ...oneRank, ...small, "--head-dim", "6", "--steps", "2", "--resume", ckpt])
    expect(without.status).toBe(2)
    expect(without.err).toContain("was saved from another run (qkNorm on; this run has qkNorm off)")
    const other = await run(["train", ...oneRank, ...small, "--qk-norm", "--steps", "2", "--resume", ckpt])
    expect(other.err).toContain("was saved from another run (headDim 6; this run has headDim 4)")
    expect((await run(["train", ...oneRank, ...small, "--head-dim", "6", "--qk-norm", "--steps", "2", "--resume", ckpt])).status).toBe(0)
  }, 60_000)

  test("--qk-l2-norm is --qk-norm with weights fixed at 1: the same first loss (the norms start at 1), no parameters; one rank's training on a folded mapping; a checkpoint's identity; with --qk-norm refused", async () => {
    const first = async (extra: ReadonlyArray<string>) => {
      const r = await run(["train", ...oneRank, ...small, "--dtype", "float64", "--steps", "2", "--log", "json", ...extra])
      expect(r.status, r.err).toBe(0)
      return stepLosses(r.out)
    }
    const [l2, rms, none] = [await first(["--qk-l2-norm"]), await first(["--qk-norm"]), await first([])]
    expect(l2[0]).toBe(rms[0])
    expect(l2[0]).not.toBe(none[0])
    // The norm weights learn under --qk-norm only.
    expect(l2[1]).not.toBe(rms[1])
    expect(Params.specs({ ...ModelConfig.small, qkL2Norm: true }).some((p) => p.name.endsWith("Norm") && p.name.includes("q"))).toBe(false)
    const v = await run(["verify", "--qk-l2-norm", "--head-dim", "6", "--dtype", "float64", "--steps", "2"])
    expect(v.status, v.out + v.err).toBe(0)
    const ckpt = fresh("qk-l2")
    expect((await run(["train", ...oneRank, ...small, "--qk-l2-norm", "--steps", "1", "--save", ckpt])).status).toBe(0)
    const without = await run(["train", ...oneRank, ...small, "--steps", "2", "--resume", ckpt])
    expect(without.err).toContain("was saved from another run (qkL2Norm on; this run has qkL2Norm off)")
    expect(refused(["train", "--qk-l2-norm", "--qk-norm"])).toContain(
      "--qk-l2-norm: true and --qk-norm both normalize each head's q and k; fix: keep one of --qk-norm and --qk-l2-norm",
    )
    const out = fresh("qk-l2-export")
    const exported = await run(["export", "--checkpoint", ckpt, "--out", `${out}/model`])
    expect(exported.status).toBe(2)
    expect(exported.err).toContain("--qk-l2-norm")
  }, 120_000)

  test("a head width RoPE cannot turn is refused before any work", () => {
    expect(refused(["train", "--head-dim", "5"])).toBe(
      "pleat train: --head-dim: 5 is not an even number of 2 or more (RoPE turns pairs of a head's dimensions); fix: pass --head-dim N with N = 2, 4, 6, ...",
    )
    expect(refused(["train", "--hidden", "12", "--heads", "4", "--kv-heads", "2"])).toContain(
      "--hidden: 12 gives heads of an odd width hidden / heads = 3 (RoPE turns pairs of a head's dimensions); fix: use a hidden size whose heads are of an even width, or give --head-dim",
    )
  })
})
