// `--recompute-modules LIST` (Megatron-LM's --recompute-modules): what `--recompute selective`
// recomputes. pleat verify agrees with one rank on folded mappings for module sets (float64;
// multi-latent attention's mla_up_proj under cp too);
// the list takes commas or spaces, `none` recomputes nothing; a list without selective recompute,
// an unknown module and an empty list are refused with one line naming the flag.
import { describe, expect, test } from "vitest"
import * as RecomputeModules from "../../src/model/RecomputeModules.js"
import { run } from "./cliRun.js"
import { refused } from "./refused.js"

const mapping = ["--world", "8", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2", "--etp", "2", "--dense-first", "1", "--shared-expert-ffn", "32"]

describe("--recompute-modules", () => {
  test("module sets agree with one rank (pleat verify, float64)", async () => {
    for (const modules of [["moe"], ["moe_act", "mlp", "shared_experts"], ["core_attn", "experts", "moe"], ["none"]]) {
      const r = await run(["verify", "--dtype", "float64", "--steps", "2", ...mapping, "--recompute", "selective", "--recompute-modules", modules.join(",")])
      expect(r.status, `${modules}: ${r.out}${r.err}`).toBe(0)
      expect(r.out).toMatch(/: OK\n/)
    }
    // Multi-latent attention from its latents, its context exchange replayed (cp 2), with a query latent.
    const mla = ["--multi-latent-attention", "--q-lora-rank", "16", "--world", "8", "--tp", "2", "--cp", "2", "--pp", "1", "--ep", "2"]
    const r = await run(["verify", "--dtype", "float64", "--steps", "2", ...mla, "--recompute", "selective", "--recompute-modules", "mla_up_proj,moe_act"])
    expect(r.status, `${r.out}${r.err}`).toBe(0)
    expect(r.out).toMatch(/: OK\n/)
  }, 300_000)

  test("the list's forms, and what is refused", () => {
    expect(RecomputeModules.parse("recompute-modules", "moe, mlp moe")).toEqual(["moe", "mlp"])
    expect(RecomputeModules.parse("recompute-modules", "none")).toEqual([])
    expect(RecomputeModules.recomputes({ recompute: "selective" }, "experts")).toBe(true)
    expect(RecomputeModules.recomputes({ recompute: "selective" }, "core_attn")).toBe(false)
    expect(RecomputeModules.recomputes({ recompute: "full", recomputeModules: ["moe"] }, "moe")).toBe(false)
    expect(refused(["train", "--recompute-modules", "moe"])).toMatch(
      /^pleat train: --recompute-modules: "moe" picks what selective recompute recomputes, and the recompute is none; fix: add --recompute selective/,
    )
    expect(refused(["train", "--recompute", "full", "--recompute-modules", "moe"])).toContain("and the recompute is full")
    expect(refused(["train", "--recompute", "selective", "--recompute-modules", "attention"])).toMatch(/^pleat train: --recompute-modules: "attention" names no module/)
    expect(refused(["train", "--recompute", "selective", "--recompute-modules", ","])).toMatch(/^pleat train: --recompute-modules: /)
  })
})
