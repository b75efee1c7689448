// `--sliding-window N` (every layer's; transformers' sliding_window): folded mappings train as one
// rank (pleat verify: float64 with tp and sequence parallelism, cp 2 and 4 where a window spans
// chunks held by other ranks, pp, multi-latent attention with multi-token prediction, packed
// documents; float32 on the native kernels, on the host and a simulated device); the window is
// recorded in the checkpoint, which a run with another window may resume; a window of 0 is
// refused. With --window-attn-skip-freq N (every N-th layer without the window) the same, and the
// checkpoint records N; N without a window, and N = 0, are refused, and so is exporting it (no
// format pleat writes holds it). (Against transformers: ExportCommand.test.ts, Mixtral's
// sliding_window.)
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"

describe("sliding-window attention", () => {
  test("folded mappings train as one rank (pleat verify)", async () => {
    const cases = [
      ["--dtype", "float64", "--seq", "32", "--sliding-window", "5"],
      ["--dtype", "float64", "--world", "8", "--tp", "2", "--cp", "4", "--pp", "1", "--ep", "4", "--seq", "64", "--sliding-window", "11"],
      ["--dtype", "float64", "--seq", "32", "--sliding-window", "6", "--multi-latent-attention", "--mtp-num-layers", "1"],
      ["--dtype", "float64", "--seq", "32", "--sliding-window", "9", "--eod-token", "5", "--reset-attention-mask", "--eod-mask-loss"],
      ["--seq", "32", "--sliding-window", "7"],
      ["--seq", "32", "--sliding-window", "7", "--device", "sim"],
      ["--dtype", "float64", "--seq", "32", "--sliding-window", "5", "--window-attn-skip-freq", "2"],
      [
        "--dtype",
        "float64",
        "--seq",
        "32",
        "--layers",
        "3",
        "--pp",
        "1",
        "--sliding-window",
        "6",
        "--window-attn-skip-freq",
        "3",
        "--multi-latent-attention",
        "--mtp-num-layers",
        "1",
      ],
      ["--seq", "32", "--sliding-window", "7", "--window-attn-skip-freq", "2"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--steps", "2", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
  }, 300_000)

  test("the checkpoint records the window; another window may resume it; 0 is refused", async () => {
    const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--hidden", "16", "--seq", "16", "--layers", "2"]
    const dir = fresh("window")
    expect((await run(["train", ...oneRank, "--sliding-window", "4", "--steps", "1", "--save", dir])).status).toBe(0)
    expect(Checkpoint.manifest(dir).model.slidingWindow).toBe(4)
    expect((await run(["train", ...oneRank, "--sliding-window", "8", "--steps", "2", "--resume", dir])).status).toBe(0)
    expect(refused(["train", "--sliding-window", "0"])).toContain("--sliding-window")
    const skipping = fresh("window-skip")
    expect((await run(["train", ...oneRank, "--sliding-window", "4", "--window-attn-skip-freq", "2", "--steps", "1", "--save", skipping])).status).toBe(0)
    expect(Checkpoint.manifest(skipping).model).toMatchObject({ slidingWindow: 4, windowAttnSkipFreq: 2 })
    expect(refused(["train", "--window-attn-skip-freq", "2"])).toMatch(/^pleat train: --window-attn-skip-freq: 2 .*add --sliding-window N/)
    expect(refused(["train", "--sliding-window", "4", "--window-attn-skip-freq", "0"])).toContain("--window-attn-skip-freq")
    expect(refused(["export", "--checkpoint", skipping, "--out", fresh("window-skip-export")])).toContain("--window-attn-skip-freq 2")
  }, 60_000)
})
