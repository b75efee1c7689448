// `--init-method-std F` (Megatron's initialisation, InitMethod.withStd; its spreads are checked in
// properties/train/InitMethod.prop.ts): folded mappings train as one rank from it (pleat verify,
// float64); with F = 0.02 the first step's loss (no aux loss) is within 0.03 of ln(vocab), as small
// logits give, and the model learns; F not above 0 is refused, naming the flag.
import { describe, expect, test } from "vitest"
import { run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

describe("--init-method-std", () => {
  test("folded mappings train as one rank from it; the first loss is about ln(vocab); it learns", async () => {
    const verified = await run(["verify", "--steps", "2", "--dtype", "float64", "--init-method-std", "0.02", "--shared-expert-ffn", "32"])
    expect(verified.status, verified.out + verified.err).toBe(0)
    const trained = await run(["train", "--steps", "30", "--init-method-std", "0.02", "--aux-loss", "none", "--log", "json"])
    expect(trained.status, trained.err).toBe(0)
    const losses = stepLosses(trained.out)
    expect(losses).toHaveLength(30)
    expect(Math.abs((losses[0] as number) - Math.log(32))).toBeLessThan(0.03)
    expect(losses[29] as number).toBeLessThan((losses[0] as number) - 0.5)
  }, 300_000)

  test("a standard deviation not above 0 is refused", () => {
    expect(refused(["train", "--init-method-std", "0"])).toMatch(/^pleat train: --init-method-std: 0 is not a number above 0; fix: pass --init-method-std F/)
    expect(refused(["verify", "--init-method-std", "-0.01"])).toContain("--init-method-std")
  })
})
