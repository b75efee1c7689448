// LatentMoE (`--moe-latent-size L`; Megatron-LM's moe_latent_size, Nemotron 3's): each MoE layer
// projects its tokens hidden -> L after the router, dispatches and runs its experts at width L,
// and projects the combined rows back. Folded mappings train as one rank (pleat verify in
// float64: tp with sequence parallelism, cp, pp, ep, etp, both dispatchers, the probs on the
// input, shared experts, biases, recompute; float32 on the native kernels); the parameters and
// their shapes; the FLOPs counted by component (pleat's and Megatron-LM's formula); the latent
// width is part of a checkpoint's identity; bad values, and export, are refused with one line.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ModelFlops from "../../src/plan/ModelFlops.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import * as StepFlops from "../../src/train/StepFlops.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2"]
describe("LatentMoE (--moe-latent-size)", () => {
  test("folded mappings train as one rank (pleat verify)", async () => {
    const cases = [
      ["--dtype", "float64", "--moe-latent-size", "16", ...mapping(8, 2, 2, 1, 2, 2)],
      ["--dtype", "float64", "--moe-latent-size", "48", "--add-bias-linear", "--shared-expert-ffn", "32", "--recompute", "full", ...mapping(8, 2, 1, 2, 4)],
      ["--dtype", "float64", "--moe-latent-size", "8", "--dispatcher", "allgather", "--recompute", "selective", ...mapping(8, 1, 2, 2, 2, 2)],
      ["--dtype", "float64", "--moe-latent-size", "12", "--topk", "1", "--pre-softmax", "--probs-at", "input", "--dense-first", "1", ...mapping(4, 2, 1, 1, 4)],
      // float32 on the native kernels
      ["--moe-latent-size", "16", ...mapping(4, 2, 1, 1, 2, 2)],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--steps", "3", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
      expect(r.out, flags.join(" ")).toMatch(/: OK\n/)
    }
  }, 300_000)

  test("the parameters: two replicated projections a layer, experts at the latent width", () => {
    const m = { ...ModelConfig.small, moeLatentSize: 12, linearBias: true, denseFirst: 1 }
    const layer1 = Params.specs(m)
      .filter((s) => s.name.startsWith("layers.1.") && (s.name.includes("latent") || s.name.includes("experts.w") || s.name.endsWith("bDown")))
      .map((s) => [s.name, s.shape, s.sharding])
    expect(layer1).toEqual([
      ["layers.1.latentIn", [m.hidden, 12], "replicated"],
      ["layers.1.latentOut", [12, m.hidden], "replicated"],
      ["layers.1.latentInBias", [12], "replicated"],
      ["layers.1.latentOutBias", [m.hidden], "replicated"],
      ["layers.1.experts.wGate", [m.experts, 12, m.moeFfn], "expert-cols"],
      ["layers.1.experts.wUp", [m.experts, 12, m.moeFfn], "expert-cols"],
      ["layers.1.experts.wDown", [m.experts, m.moeFfn, 12], "expert-rows"],
      ["layers.1.experts.bDown", [m.experts, 12], "expert-rows"],
    ])
    // The dense first layer has none.
    expect(Params.specs(m).some((s) => s.name.startsWith("layers.0.latent"))).toBe(false)
  })

  test("FLOPs by component: pleat's count and Megatron-LM's formula", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 64 }), (latent, topk, batch) => {
        const base = { ...ModelConfig.small, hidden: 256, heads: 4, kvHeads: 4, experts: 8, topk, moeFfn: 96, ffn: 512, layers: 3, seq: 64, sharedExpertFfn: 64 }
        const m = { ...base, moeLatentSize: latent }
        const h = m.hidden
        // pleat's: 3 x (2 FLOPs a multiply-add) per token; the experts at width L, plus H x L twice.
        const extra = 3 * 2 * (topk * 3 * latent * m.moeFfn - topk * 3 * h * m.moeFfn + 2 * h * latent) * m.layers * batch * m.seq
        expect(Math.abs(StepFlops.perStep(m, batch) - StepFlops.perStep(base, batch) - extra) / StepFlops.perStep(m, batch)).toBeLessThan(1e-12)
        // Megatron-LM's formula counts the same difference (the router and norms it does not count either way).
        const megatron = ModelFlops.perStep(m, m.seq, batch) - ModelFlops.perStep(base, m.seq, batch)
        expect(Math.abs(megatron - extra) / ModelFlops.perStep(m, m.seq, batch)).toBeLessThan(1e-9)
      }),
      { numRuns: 100 },
    )
  })

  test("trains, changes the model, is part of a checkpoint's identity; bad values and export refused", async () => {
    const ckpt = fresh("latent-moe")
    const trained = await run(["train", ...oneRank, "--moe-latent-size", "16", "--steps", "3", "--log", "json", "--save", ckpt])
    expect(trained.status, trained.err).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.moeLatentSize).toBe(16)
    const losses = stepLosses(trained.out)
    expect(losses.every(Number.isFinite)).toBe(true)
    const plain = await run(["train", ...oneRank, "--steps", "3", "--log", "json"])
    expect(stepLosses(plain.out)[0]).not.toBe(losses[0])
    const other = await run(["train", ...oneRank, "--moe-latent-size", "8", "--steps", "4", "--resume", ckpt])
    expect(other.status).toBe(2)
    expect(other.err).toContain("moeLatentSize")
    expect((await run(["train", ...oneRank, "--moe-latent-size", "16", "--steps", "4", "--resume", ckpt])).status).toBe(0)
    expect(refused(["train", "--moe-latent-size", "0"])).toMatch(/^pleat train: --moe-latent-size: "0" /)
    expect(refused(["train", "--moe-latent-size", "2.5"])).toMatch(/^pleat train: --moe-latent-size: /)
    expect(refused(["export", "--checkpoint", ckpt, "--out", `${fresh("latent-export")}/m`])).toMatch(/LatentMoE \(--moe-latent-size 16\)/)
  }, 120_000)
})
