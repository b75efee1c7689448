// --pipeline-layout LAYOUT (Megatron-Core's --pipeline-model-parallel-layout): a layout trains as
// one rank does (pleat verify, float64) with an empty middle stage, interleaved stages, an
// embedding-only first stage, MTP layers beside the loss, on worker threads; a layout of the
// counts --first-stage-layers / --last-stage-layers give trains bit for bit as they do; the banner
// names each pp rank's layers; Megatron-LM's name reads as pleat's, and its accounted-for ends
// (--account-for-embedding/loss-in-pipeline-split) as the layout of its split; contradictions are
// refused naming the flag.
import { describe, expect, test } from "vitest"
import { mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const small = ["--hidden", "16", "--seq", "16", "--global-batch", "4", "--vocab", "40"]

/** `pleat verify` of the flags in float64: its exit status and its verdict line. */
const verified = async (flags: ReadonlyArray<string>) => {
  const r = await run(["verify", ...small, ...flags, "--dtype", "float64", "--steps", "2"])
  expect(r.status, r.err).toBe(0)
  return r.out
}

describe("--pipeline-layout", () => {
  test("trains as one rank does: an empty middle stage, interleaving, an embedding-only first stage, MTP beside the loss, worker threads", async () => {
    for (const flags of [
      [...mapping(4, 1, 1, 2, 2), "--layers", "4", "--pipeline-layout", "Ett||t|tL"],
      [...mapping(8, 2, 1, 4, 2), "--layers", "4", "--pipeline-layout", "E|tt|t|tmL", "--mtp-num-layers", "1"],
      [...mapping(4, 1, 2, 2, 2), "--layers", "6", "--pipeline-layout", "Et|(tt|)*2,tL", "--backend", "threads"],
    ]) {
      const out = await verified(flags)
      expect(out, flags.join(" ")).toMatch(/: OK\n?$/)
    }
  }, 240_000)

  test("the counts of --first-stage-layers / --last-stage-layers as a layout train bit for bit as they do; the banner names each rank's layers", async () => {
    const base = [...mapping(4, 1, 1, 4, 1), ...small, "--layers", "6", "--steps", "3", "--log", "json"]
    const ends = await run(["train", ...base, "--first-stage-layers", "1", "--last-stage-layers", "1"])
    const layout = await run(["train", ...base, "--pipeline-layout", "Et|t*2|tt|tL"])
    expect(layout.status, layout.err).toBe(0)
    expect(stepLosses(layout.out)).toEqual(stepLosses(ends.out))
    expect(stepLosses(layout.out)).toHaveLength(3)
    const text = await run(["train", ...mapping(4, 1, 1, 2, 2), ...small, "--layers", "4", "--steps", "1", "--pipeline-layout", "Ett||t|tL"])
    expect(text.out).toMatch(/pp 2 \(vpp 2\) with layers 3\/1 by pp rank/)
  }, 120_000)

  test("Megatron-LM's name reads as pleat's; what contradicts it is refused naming the flag", async () => {
    const megatron = await run(["train", ...mapping(4, 1, 1, 2, 2), ...small, "--num-layers", "4", "--pipeline-model-parallel-layout", "Ett||t|tL", "--train-iters", "1"])
    expect(megatron.status, megatron.err).toBe(0)
    expect(megatron.out).toMatch(/with layers 3\/1 by pp rank/)
    expect(refused(["train", "--layers", "4", "--pipeline-layout", "Et|tttL", "--vpp", "2"])).toContain(
      "--vpp: 2 contradicts --pipeline-layout, whose 2 stages over pp 2 make vpp 1; fix: leave out --vpp: the layout sets it",
    )
    expect(refused(["train", "--layers", "4", "--pipeline-layout", "Et|tttL", "--first-stage-layers", "1"])).toContain(
      '--pipeline-layout: "Et|tttL" gives every stage its layers, and so do --first-stage-layers / --last-stage-layers',
    )
    expect(refused(["train", "--layers", "4", "--pipeline-layout", "Et|ttL"])).toContain('--pipeline-layout: "Et|ttL" holds 3 transformer layers (t), where the model has 4')
    // --account-for-embedding/loss-in-pipeline-split: the ends counted as layers in the equal split (6 + 1 + 1 over 2 x 2 stages: 1, 2, 2, 1).
    const flags = [...mapping(4, 1, 1, 2, 2), ...small, "--num-virtual-stages-per-pipeline-rank", "2", "--steps", "2", "--log", "json"]
    const accounted = await run(["train", ...flags, "--num-layers", "6", "--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split"])
    const written = await run(["train", ...flags, "--layers", "6", "--pipeline-layout", "Et|tt|tt|tL"])
    expect(accounted.status, accounted.err).toBe(0)
    expect(stepLosses(accounted.out)).toEqual(stepLosses(written.out))
    const loss = await run(["train", ...mapping(2, 1, 1, 2, 1), ...small, "--num-layers", "5", "--account-for-loss-in-pipeline-split", "--steps", "1"])
    expect(loss.out).toMatch(/pp 2 with layers 3\/2 by pp rank/)
    expect(refused(["train", "--num-layers", "4", "--pipeline-model-parallel-size", "2", "--account-for-loss-in-pipeline-split"])).toContain(
      "--account-for-loss-in-pipeline-split: true makes 5 layers to split (4 + the accounted-for ends), which the 2 pipeline stages (pp 2 x vpp 1) cannot share equally",
    )
    expect(
      refused(["train", "--num-layers", "5", "--pipeline-model-parallel-size", "2", "--account-for-loss-in-pipeline-split", "--decoder-first-pipeline-num-layers", "2"]),
    ).toContain("and the first and last stages' own counts (or a layout) both split the layers")
    // Megatron-LM's pp defaults to 1 in its names' runs.
    expect(refused(["train", "--num-layers", "6", "--pipeline-model-parallel-layout", "Et*3|t*3L"])).toContain(
      '--pipeline-model-parallel-layout: "Et*3|t*3L" has 2 stages, where pp is 1 (virtual stages need pipeline parallelism)',
    )
  }, 60_000)
})
