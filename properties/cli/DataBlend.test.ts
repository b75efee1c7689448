// --data-blend "W FILE W FILE ..." (Megatron-LM's --train-data-path W PREFIX ...): a blend of one
// file trains bit for bit as --data FILE; a blend of two trains under a folded mapping as one rank
// does (pleat verify, float64: data-parallel ranks read their own sequences of the blend) and
// otherwise than either file alone; what cannot be a blend is refused naming the flag.
import { describe, expect, test } from "vitest"
import { mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses, uint16File, walk } from "./tokenFiles.js"

const small = ["--hidden", "16", "--seq", "16", "--global-batch", "4", "--vocab", "40"]

describe("--data-blend", () => {
  test("one file is --data; two train as one rank does, and as neither file alone", async () => {
    const [a, b] = [uint16File(walk(600, 1)), uint16File(walk(900, 5).map((x) => (x + 17) % 40))]
    const losses = async (flags: ReadonlyArray<string>) => {
      const r = await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--steps", "3", "--log", "json", ...flags])
      expect(r.status, r.err).toBe(0)
      return stepLosses(r.out)
    }
    expect(await losses(["--data-blend", `2.5 ${a}`])).toEqual(await losses(["--data", a]))
    const blended = await losses(["--data-blend", `0.3 ${a} 0.7 ${b}`])
    expect(blended).not.toEqual(await losses(["--data", a]))
    expect(blended).not.toEqual(await losses(["--data", b]))
    const v = await run(["verify", ...mapping(4, 1, 1, 2, 2), ...small, "--data-blend", `1 ${a} 3 ${b}`, "--dtype", "float64", "--steps", "2"])
    expect(v.status, v.err).toBe(0)
    expect(v.out).toMatch(/: OK\n?$/)
  }, 120_000)

  test("what cannot be a blend is refused naming the flag", () => {
    const a = uint16File(walk(600, 1))
    expect(refused(["train", "--data-blend", `1 ${a}`, "--data", a])).toContain("and --data both give the training data")
    expect(refused(["train", "--data-blend", `1 ${a}`, "--data-range", "0:100"])).toContain("cuts --data, but there is no --data")
    expect(refused(["train", "--data-blend", `${a} 1`])).toContain("is not pairs of a positive weight and a token file")
    expect(refused(["train", "--data-blend", `0 ${a}`])).toContain("is not pairs of a positive weight and a token file")
    expect(refused(["train", "--data-blend", `1 ${a}.missing`])).toMatch(/--data-blend: ".*missing" cannot be read/)
  })
})
