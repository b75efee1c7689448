// Commands that can take over a second show progress on stderr, and only there: `pleat verify`
// counts compared steps, `pleat groups` on a large world its phases. Their stdout is byte for
// byte what the command prints without progress (computed here from the same parts), and a
// small world of `pleat groups` writes nothing to stderr. On a terminal the bar is erased before
// any line of stdout, so both can share it.
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as Activity from "../../src/cli/Activity.js"
import * as GroupsCommand from "../../src/cli/GroupsCommand.js"
import * as GroupsText from "../../src/cli/GroupsText.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as Progress from "../../src/cli/Progress.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as VerifyCommand from "../../src/cli/VerifyCommand.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Report from "../../src/mapping/Report.js"
import * as Lockstep from "../../src/train/Lockstep.js"

const verify = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const ran = VerifyCommand.run(argv, io)
  const status = typeof ran === "number" ? ran : await Effect.runPromise(Effect.provideService(ran, Activity.Activity, Activity.make()))
  return { status, out: io.out, err: io.err }
}

describe("progress of long commands goes to stderr; stdout is unchanged", () => {
  test("pleat verify: a line per tenth compared step on stderr; stdout holds exactly the comparisons and the verdict", async () => {
    const argv = [
      "--world",
      "2",
      "--tp",
      "1",
      "--cp",
      "1",
      "--pp",
      "2",
      "--ep",
      "1",
      "--hidden",
      "16",
      "--seq",
      "8",
      "--global-batch",
      "4",
      "--dtype",
      "float64",
      "--steps",
      "12",
      "--log",
      "json",
    ]
    const r = await verify(argv)
    expect(r.status, r.err).toBe(0)
    const resolved = TrainOptions.resolve(argv)
    if (resolved === "help") throw new Error("unreachable")
    const comparisons = await Effect.runPromise(Lockstep.run(resolved.setup, { steps: 12 }))
    const lines = r.out.trim().split("\n")
    expect(lines).toHaveLength(13)
    expect(lines.slice(0, 12)).toEqual(
      comparisons.map((c) => JSON.stringify({ step: c.step + 1, loss: c.loss, gradNorm: c.gradNorm, gradient: c.gradient, parameter: c.parameter })),
    )
    expect(JSON.parse(lines[12] as string)).toMatchObject({ verdict: "OK" })
    expect(r.err.split("\n").filter((l) => l !== "")).toEqual([
      expect.stringMatching(/^step 1\/12 compared \| worst relative difference [\d.e+-]+$/),
      expect.stringMatching(/^step 10\/12 compared \| /),
      expect.stringMatching(/^step 12\/12 compared \| /),
    ])
  }, 60_000)

  test("pleat groups: phases on stderr from 16384 ranks on, none below; stdout is the report as before", () => {
    for (const [world, json] of [
      [16384, true],
      [16384, false],
      [4096, true],
    ] as const) {
      const io = memoryIo()
      const status = GroupsCommand.run(["--world", String(world), "--tp", "2", "--pp", "2", "--ep", "4", ...(json ? ["--json"] : [])], io)
      expect(status).toBe(0)
      const config = ParallelConfig.make({ world, tp: 2, pp: 2, ep: 4 })
      const report = Report.make(config)
      expect(io.out === (json ? `${JSON.stringify(report)}\n` : GroupsText.render(report, config))).toBe(true)
      if (world < 16384) {
        expect(io.err).toBe("")
        continue
      }
      expect(io.err).toBe(`phase 0/2 computing the groups of ${world} ranks\nphase 1/2 formatting the ${json ? "JSON" : "table"}\nphase 2/2 done\n`)
    }
  }, 60_000)

  test("on a terminal the bar is redrawn in place and erased before a line of stdout", () => {
    const written: Array<string> = []
    const p = Progress.make(3, 0, { isTTY: true, columns: 40, write: (s: string) => written.push(s) })
    p.update(1, "a")
    p.clear()
    p.clear()
    p.update(2, "b")
    p.finish()
    expect(written).toEqual([`\r${Progress.line(1, 3, "a", 40)}\u001b[K`, "\r\u001b[K", `\r${Progress.line(2, 3, "b", 40)}\u001b[K`, "\n"])
  })
})
