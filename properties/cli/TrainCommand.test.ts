// `pleat train` as users run it: summary, JSON step lines, trace file, config files, rejected
// configurations (`pleat verify` has its own file, Verify.test.ts).
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err, files: io.files }
}

const model = ["--world", "4", "--tp", "1", "--cp", "2", "--pp", "2", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]
const small = ["--steps", "3", ...model]

describe("pleat train", () => {
  test("prints a summary: final loss, tokens/s, FLOPs, load imbalance per MoE layer; writes a trace", async () => {
    const r = await run(["train", ...small, "--trace", "trace.json"])
    expect(r.status, r.err).toBe(0)
    expect(r.out).toMatch(/final loss \d+\.\d+ \(step 1: \d+\.\d+\)/)
    expect(r.out).toMatch(/tokens\/s over 3 steps/)
    expect(r.out).toMatch(/model FLOPs per step [\d.e+]+; achieved [\d.e+]+ FLOP\/s/)
    expect(r.out).toMatch(/layer 0: \d+\.\d\d, layer 1: \d+\.\d\d/)
    const trace = JSON.parse(r.files.get("trace.json") ?? "{}") as { traceEvents: Array<{ cat?: string; name: string; pid?: number }> }
    const cats = new Set(trace.traceEvents.map((e) => e.cat))
    for (const c of ["compute", "comm", "idle", "step"]) expect(cats.has(c), c).toBe(true)
    expect(trace.traceEvents.some((e) => e.name.startsWith("allToAllV"))).toBe(true)
    expect(new Set(trace.traceEvents.map((e) => e.pid)).size).toBe(4)
  }, 60_000)

  test("--trace-steps records only its window of steps (counting from 1), on every rank", async () => {
    const r = await run(["train", ...small, "--trace", "window.json", "--trace-steps", "2:2"])
    expect(r.status, r.err).toBe(0)
    const trace = JSON.parse(r.files.get("window.json") ?? "{}") as { traceEvents: Array<{ cat?: string; name: string; pid?: number; ts?: number; dur?: number }> }
    const steps = trace.traceEvents.filter((e) => e.cat === "step")
    // The second step of each rank (its span named as the progress counts), and every other span inside it.
    expect(steps.map((e) => [e.pid, e.name])).toEqual([0, 1, 2, 3].map((rank) => [rank, "step 2"]))
    for (const e of trace.traceEvents.filter((e) => e.ts !== undefined && e.cat !== "step" && e.cat !== "idle")) {
      const step = steps.find((s) => s.pid === e.pid) as { ts: number; dur: number }
      expect(e.ts as number).toBeGreaterThanOrEqual(step.ts - 1)
      expect((e.ts as number) + (e.dur as number)).toBeLessThanOrEqual(step.ts + step.dur + 1)
    }
  }, 60_000)

  test("on the threads backend: steps stream as they complete, and --trace records every rank", async () => {
    const r = await run(["train", ...small, "--backend", "threads", "--log", "json", "--trace", "threads-trace.json"])
    expect(r.status, r.err).toBe(0)
    const lines = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines.map((l) => l.msg)).toEqual(["start", "step", "step", "step", "summary"])
    // Streamed: each step's record was written when that step completed, not all at the end
    // (a step of 4 ranks takes tens of ms; records written together are within a millisecond).
    const times = lines.map((l) => l.time as number)
    expect((times[3] as number) - (times[1] as number)).toBeGreaterThanOrEqual(10)
    const trace = JSON.parse(r.files.get("threads-trace.json") ?? "{}") as { traceEvents: Array<{ cat?: string; name: string; pid?: number }> }
    for (let rank = 0; rank < 4; rank++) {
      const cats = new Set(trace.traceEvents.filter((e) => e.pid === rank).map((e) => e.cat))
      for (const c of ["compute", "comm", "step"]) expect(cats.has(c), `rank ${rank}: ${c}`).toBe(true)
    }
  }, 90_000)

  test("--log json prints a start record, one pino line per step with step, loss, lr, tokensPerSec, and a summary record last", async () => {
    const r = await run(["train", ...small, "--log", "json"])
    expect(r.status, r.err).toBe(0)
    const lines = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines.map((l) => l.msg)).toEqual(["start", "step", "step", "step", "summary"])
    const steps = lines.filter((l) => l.msg === "step")
    expect(steps.map((l) => l.step)).toEqual([1, 2, 3])
    for (const l of steps) for (const k of ["loss", "lr", "tokensPerSec"]) expect(typeof l[k]).toBe("number")
    const summary = lines[4] as Record<string, unknown>
    expect(summary.steps).toBe(3)
    expect(summary.finalLoss).toBe(steps[2]?.loss)
    expect(summary.firstLoss).toBe(steps[0]?.loss)
    for (const k of ["tokensPerSec", "seconds", "flopsPerStep", "flopsPerSec"]) expect(summary[k] as number).toBeGreaterThan(0)
    // Steady: the median step of the run's second half (steps 2 and 3 of 3: the mean of their
    // seconds), so the harmonic mean of those steps' own tokens/s.
    const [, second, third] = steps.map((l) => l.tokensPerSec as number)
    expect(summary.steadyTokensPerSec as number).toBeCloseTo(2 / (1 / (second as number) + 1 / (third as number)), 6)
    expect((summary.imbalance as Array<unknown>).length).toBe(4) // one per MoE layer (every layer of the default 4)
  }, 60_000)

  test.each(["local", "threads"])(
    "--log-level reaches the per-rank loggers on %s: debug shows each rank's collectives with its coordinates, warn (the default) is quiet",
    async (backend) => {
      const quiet = await run(["train", ...model, "--backend", backend, "--steps", "1", "--log", "json"])
      expect(quiet.status, quiet.err).toBe(0)
      expect(quiet.err).toBe("")
      const loud = await run(["train", ...model, "--backend", backend, "--steps", "1", "--log", "json", "--log-level", "debug"])
      expect(loud.status).toBe(0)
      const records = loud.err
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(records.length).toBeGreaterThan(0)
      expect(new Set(records.map((r) => r.rank))).toEqual(new Set([0, 1, 2, 3]))
      for (const r of records) {
        expect(r.level).toBe(20)
        for (const k of ["tp", "cp", "dp", "pp", "ep", "etp"]) expect(typeof r[k], k).toBe("number")
      }
      const bad = await run(["train", "--log-level", "loud"])
      expect(bad.status).toBe(2)
      expect(bad.err).toContain('--log-level: "loud" is not allowed; fix: use one of trace, debug, info, warn, error, silent')
    },
    60_000,
  )

  test("a configuration that cannot work exits 2 with one line naming the field", async () => {
    const cases: Array<[Array<string>, string]> = [
      [["--layers", "3"], "layers: 3 is not divisible by pp*vpp"],
      [["--heads", "3", "--hidden", "33"], "heads: 3 is not divisible by tp = 2"],
      [["--seq", "10"], "seq: 10 is not divisible by 2*cp = 4"],
      [["--experts", "3"], "experts: 3 is not divisible by ep = 2"],
      [["--global-batch", "3", "--micro-batch", "2"], "global-batch: 3 is not divisible by micro-batch*dp = 2*1"],
      [["--dtype", "float16"], 'dtype: "float16" is not allowed'],
      [["--world", "12"], "world: 12 is not divisible by tp*cp*pp"],
      [["--backend", "gloo"], 'backend: "gloo" is not allowed'],
    ]
    for (const [args, message] of cases) {
      const r = await run(["train", ...args])
      expect(r.status, args.join(" ")).toBe(2)
      expect(r.err.trimEnd().split("\n")).toHaveLength(1)
      expect(r.err).toContain(message)
    }
  })

  test("a config file sets the same keys; flags win; unknown keys are refused", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-config-"))
    const file = path.join(dir, "job.json")
    writeFileSync(file, JSON.stringify({ steps: 2, world: 2, tp: 1, cp: 1, pp: 2, ep: 1, hidden: 16, seq: 8, "global-batch": 4, log: "json" }))
    const r = await run(["train", "--config", file, "--steps", "1"])
    expect(r.status, r.err).toBe(0)
    // start, one step (flags win over the file's 2), summary
    expect(
      r.out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).msg),
    ).toEqual(["start", "step", "summary"])
    writeFileSync(file, JSON.stringify({ stepz: 2 }))
    const bad = await run(["train", "--config", file])
    expect(bad.status).toBe(2)
    expect(bad.err).toContain('has the unknown key "stepz"')
    expect(readFileSync(file, "utf8")).toContain("stepz")
  })
})
