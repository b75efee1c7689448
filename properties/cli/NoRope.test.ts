// --no-rope-freq N (Megatron's; Llama 4's NoPE layers): folded mappings train as one rank does
// (pleat verify, float64, cp 2 where positions split over ranks, pp 2 with the NoPE layers on
// either stage, threads); the layers without RoPE change the loss; Megatron-LM's
// --position-embedding-type none is every layer without; a checkpoint records it; what pleat
// cannot build is refused naming the flag.
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const small = ["--hidden", "16", "--seq", "16", "--global-batch", "4", "--vocab", "40"]

describe("--no-rope-freq", () => {
  test("folded mappings train as one rank does; the NoPE layers change the loss", async () => {
    for (const flags of [
      [...mapping(8, 2, 2, 2, 2), "--no-rope-freq", "2"],
      [...mapping(4, 1, 2, 2, 2), "--no-rope-freq", "([0]*3+[1])*1", "--backend", "threads"],
    ]) {
      const r = await run(["verify", ...small, ...flags, "--dtype", "float64", "--steps", "2"])
      expect(r.status, r.err).toBe(0)
      expect(r.out, flags.join(" ")).toMatch(/: OK\n?$/)
    }
    const loss = async (extra: ReadonlyArray<string>) => stepLosses((await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--steps", "2", "--log", "json", ...extra])).out)
    expect(await loss(["--no-rope-freq", "2"])).not.toEqual(await loss([]))
  }, 240_000)

  test("a checkpoint records it; what pleat cannot build is refused", async () => {
    const ckpt = fresh("no-rope")
    expect((await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--no-rope-freq", "2", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.noRopeFreq).toBe(2)
    const resumed = await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--steps", "2", "--resume", ckpt])
    expect(resumed.status).toBe(2)
    expect(resumed.err).toContain("noRopeFreq")
    expect(refused(["export", "--checkpoint", ckpt, "--out", `${fresh("no-rope-out")}/m`])).toContain("it has layers without RoPE (--no-rope-freq 2, Llama 4's NoPE layers)")
    // Megatron-LM's --position-embedding-type none: every layer without RoPE.
    const none = await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--position-embedding-type", "none", "--steps", "2", "--log", "json"])
    // (Both runs use a Megatron-LM name, so both take Megatron-LM's defaults.)
    const every = await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--position-embedding-type", "rope", "--no-rope-freq", "1", "--steps", "2", "--log", "json"])
    expect(stepLosses(none.out)).toEqual(stepLosses(every.out))
    expect(stepLosses(none.out)).toHaveLength(2)
    expect(refused(["train", "--no-rope-freq", "3"])).toContain('--no-rope-freq: "3" does not divide the 4 layers (Megatron-LM requires it)')
    expect(refused(["train", "--no-rope-freq", "[1,0,0,1]"])).toContain("is not every N-th layer without RoPE, the pattern pleat builds")
    expect(refused(["train", "--no-rope-freq", "2", "--multi-latent-attention"])).toContain("is not built for multi-latent attention")
  }, 60_000)
})
