// Hybrid sharding of the distributed optimizer (`--distributed-optimizer-instances N`, Megatron's
// --num-distributed-optimizer-instances): the state sharded within N instances of consecutive
// data-parallel ranks and replicated across them trains as one rank (pleat verify, float64,
// folded mappings with pp, vpp, tp, cp, ep); each rank keeps N times the state it keeps with one
// instance; a checkpoint saved with instances resumes with none (and the reverse) as the run
// that never stopped; impossible instance counts are refused with one line.
import { describe, expect, test } from "vitest"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { records, stepLosses } from "./tokenFiles.js"

const float64 = ["--dtype", "float64", "--layers", "4"]

describe("--distributed-optimizer-instances", () => {
  test("trains as one rank on folded mappings (pleat verify)", async () => {
    const cases = [
      [...mapping(8, 1, 2, 1, 2), "--distributed-optimizer-instances", "2"],
      [...mapping(8, 2, 1, 2, 2), "--vpp", "2", "--distributed-optimizer-instances", "2"],
      [...mapping(8, 1, 2, 1, 4), "--distributed-optimizer-instances", "2", "--recompute", "full"],
      [...mapping(8, 1, 1, 1, 2), "--distributed-optimizer-instances", "4"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", ...float64, "--steps", "3", "--distributed-optimizer", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
      expect(r.out, flags.join(" ")).toMatch(/: OK\n/)
    }
  }, 300_000)

  test("each rank keeps the state of its instance's share: N times one instance's", async () => {
    const state = async (instances: number) => {
      const r = await run([
        "train",
        ...float64,
        ...mapping(8, 1, 1, 1, 1),
        "--steps",
        "1",
        "--distributed-optimizer",
        "--distributed-optimizer-instances",
        String(instances),
        "--log",
        "json",
      ])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "summary")[0]?.optimizerStateBytesPerRank as unknown as Array<number>
    }
    const [one, two, eight] = [await state(1), await state(2), await state(8)]
    const total = (xs: Array<number>) => xs.reduce((a, b) => a + b, 0)
    expect(total(two)).toBe(2 * total(one))
    // Eight instances of one rank each: every rank keeps its whole shards' state, as without sharding.
    const replicated = await run(["train", ...float64, ...mapping(8, 1, 1, 1, 1), "--steps", "1", "--log", "json"])
    expect(total(eight)).toBe(total(records(replicated.out, "summary")[0]?.optimizerStateBytesPerRank as unknown as Array<number>))
  }, 120_000)

  test("a checkpoint saved with instances resumes with none, and the reverse, as the run that never stopped", async () => {
    const flags = [...float64, ...mapping(8, 1, 2, 1, 2), "--distributed-optimizer", "--log", "json"]
    const whole = await run(["train", ...flags, "--steps", "4"])
    expect(whole.status, whole.err).toBe(0)
    for (const [first, then] of [
      [["--distributed-optimizer-instances", "2"], []],
      [[], ["--distributed-optimizer-instances", "4"]],
    ] as const) {
      const dir = fresh("instances")
      const saved = await run(["train", ...flags, ...first, "--steps", "2", "--save", dir])
      expect(saved.status, saved.err).toBe(0)
      const resumed = await run(["train", ...flags, ...then, "--steps", "4", "--resume", dir])
      expect(resumed.status, resumed.err).toBe(0)
      const want = stepLosses(whole.out).slice(2)
      stepLosses(resumed.out).forEach((loss, i) => expect(Math.abs(loss - (want[i] as number)) / (want[i] as number), `${first} then ${then}: step ${i + 3}`).toBeLessThan(1e-12))
    }
  }, 180_000)

  test("impossible instance counts are refused with one line", () => {
    expect(refused(["train", "--distributed-optimizer-instances", "2"])).toContain("splits the distributed optimizer's state, which is off; fix: add --distributed-optimizer")
    expect(refused(["train", ...mapping(8, 1, 2, 1, 2), "--distributed-optimizer", "--distributed-optimizer-instances", "3"])).toContain("does not divide dp x cp = 8")
    expect(refused(["train", ...mapping(8, 1, 2, 1, 8), "--distributed-optimizer", "--distributed-optimizer-instances", "2"])).toContain("does not divide edp = 1")
    // Megatron-LM's name, named as typed (its defaults: one rank, so dp x cp = 1).
    expect(refused(["train", "--use-distributed-optimizer", "--num-distributed-optimizer-instances", "2", "--num-layers", "2"])).toBe(
      "pleat train: --num-distributed-optimizer-instances: 2 does not divide dp x cp = 1 (the dense parameters' data-parallel ranks); fix: use a divisor of 1",
    )
  })
})
