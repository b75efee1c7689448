// --qk-norm --qk-norm-over-heads (OLMoE's q/k norms): folded mappings train as one rank does
// (pleat verify, float64: tp 4 with the heads' columns and their norm weights split, the squares
// summed over tp; tp 2 x cp 2 x pp 2 with sequence parallelism; full recompute; worker threads);
// the norm weights are one per column of q and of k; a checkpoint records it and exports as an
// OLMoE (per-head formats refuse it); without --qk-norm it is refused.
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"

const small = ["--hidden", "16", "--seq", "16", "--global-batch", "4", "--vocab", "40", "--qk-norm", "--qk-norm-over-heads"]

describe("--qk-norm-over-heads", () => {
  test("folded mappings train as one rank does", async () => {
    for (const flags of [
      [...mapping(4, 4, 1, 1, 2), "--heads", "4", "--kv-heads", "4"],
      [...mapping(8, 2, 2, 2, 2), "--recompute", "full"],
      [...mapping(4, 2, 1, 1, 4), "--heads", "4", "--kv-heads", "2", "--backend", "threads"],
    ]) {
      const r = await run(["verify", ...small, ...flags, "--dtype", "float64", "--steps", "2"])
      expect(r.status, r.err).toBe(0)
      expect(r.out, flags.join(" ")).toMatch(/: OK\n?$/)
    }
  }, 240_000)

  test("one weight per column of q and k; a checkpoint records it; it needs --qk-norm", async () => {
    const ckpt = fresh("qk-over")
    const saved = await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--heads", "4", "--kv-heads", "2", "--layers", "2", "--steps", "1", "--save", ckpt])
    expect(saved.status, saved.err).toBe(0)
    const { values } = Checkpoint.values(ckpt)
    expect([values.get("layers.0.qNorm")?.shape, values.get("layers.0.kNorm")?.shape]).toEqual([[16], [8]])
    expect(Checkpoint.manifest(ckpt).model.qkNormOverHeads).toBe(true)
    // Exported, it is an OLMoE (q_norm and k_norm one weight per column); the per-head formats refuse it.
    const out = `${fresh("qk-over-export")}/model`
    const exported = await run(["export", "--checkpoint", ckpt, "--out", out, "--json"])
    expect(exported.status, exported.err).toBe(0)
    expect(JSON.parse(exported.out).format).toBe("olmoe")
    expect(refused(["export", "--checkpoint", ckpt, "--out", `${out}-2`, "--format", "qwen3-moe"])).toContain(
      "its q and k norms are over every head at once (--qk-norm-over-heads), where Qwen3-MoE's are per head (olmoe's are over the heads)",
    )
    const perHead = small.filter((f) => f !== "--qk-norm-over-heads")
    const resumed = await run(["train", ...mapping(1, 1, 1, 1, 1), ...perHead, "--heads", "4", "--kv-heads", "2", "--layers", "2", "--steps", "2", "--resume", ckpt])
    expect(resumed.status).toBe(2)
    expect(resumed.err).toContain("qkNormOverHeads")
    expect(refused(["train", "--qk-norm-over-heads"])).toContain("--qk-norm-over-heads: true says how --qk-norm normalizes q and k, and there is no --qk-norm")
  }, 60_000)
})
