// `pleat verify` as users run it: lockstep comparison of a folded mapping with one rank (exit 0
// in float64 and float32), a planted bug (one parameter's gradient left unsynchronised) found
// and named (exit 1), and what verify cannot honour refused before any work (exit 2, one line).
import { afterEach, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as Lockstep from "../../src/train/Lockstep.js"

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

// 4 ranks: cp 2 x pp 2, ep 2: dense gradients are summed over cp, expert ones over edp.
const model = ["--world", "4", "--tp", "1", "--cp", "2", "--pp", "2", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]
const summary =
  /largest relative differences over \d+ steps: loss [\d.e+-]+ \(step \d+\), gradient norm [\d.e+-]+ \(step \d+\), gradient (?:[\d.e+-]+ \(.+, step \d+\)|0 \(every gradient equal at every step\)), parameter after update (?:[\d.e+-]+ \(.+, step \d+\)|0 \(every parameter equal at every step\)); tolerances for (float\d\d): loss ([\d.e+-]+), gradient norm [\d.e+-]+, gradients ([\d.e+-]+), parameters [\d.e+-]+: (OK|MISMATCH)/

afterEach(() => {
  delete process.env.PLEAT_FAULT_SKIP_SYNC
})

describe("pleat verify compares in lockstep", () => {
  test("a folded mapping agrees with one rank in float64: every step, loss, gradients and parameters", async () => {
    const r = await run(["verify", ...model, "--dtype", "float64", "--steps", "3"])
    expect(r.status, r.out + r.err).toBe(0)
    expect(r.out.match(/^step \d+: loss [\d.]+ \(parallel\) vs [\d.]+ \(one rank\)/gm)).toHaveLength(3)
    expect(r.out).toMatch(summary)
    expect(r.out.match(summary)?.slice(1)).toEqual(["float64", "1.0e-14", "1.0e-12", "OK"])
  }, 60_000)

  test("the default dtype (float32, native kernels) agrees within its tolerance, with JSON lines under --log json", async () => {
    const r = await run(["verify", ...model, "--steps", "4", "--log", "json", "--vpp", "2", "--layers", "4"])
    expect(r.status, r.out + r.err).toBe(0)
    const lines = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines).toHaveLength(5)
    expect(lines.slice(0, 4).map((l) => l.step)).toEqual([1, 2, 3, 4])
    expect(lines[4]).toMatchObject({ verdict: "OK", failed: [], dtype: "float32", tolerance: Lockstep.tolerance("float32") })
  }, 60_000)

  test("a missing gradient synchronisation is caught and named (exit 1)", async () => {
    // layers.0.wq is summed over cp: skipped, each rank keeps the gradient of its own tokens.
    process.env.PLEAT_FAULT_SKIP_SYNC = "layers.0.wq"
    const r = await run(["verify", ...model, "--dtype", "float64", "--steps", "2"])
    expect(r.status, r.out + r.err).toBe(1)
    expect(r.out).toMatch(summary)
    expect(r.out).toMatch(/MISMATCH: the gradient of layers\.0\.wq at step \d differs by [\d.e+-]+ between the parallel run and the one-rank run/)
  }, 60_000)

  test("an expert parameter left unsynchronised is named too, in float32", async () => {
    // 4 ranks on one stage with ep 2: expert gradients are summed over edp 2.
    process.env.PLEAT_FAULT_SKIP_SYNC = "layers.1.experts.wUp"
    const r = await run(["verify", "--world", "4", "--tp", "1", "--cp", "2", "--pp", "1", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4", "--steps", "1"])
    expect(r.status, r.out + r.err).toBe(1)
    expect(r.out).toMatch(/MISMATCH: the gradient of layers\.1\.experts\.wUp at step 1/)
  }, 60_000)
})

describe("pleat verify with forced load balancing (noise drawn from each token's logits)", () => {
  // Refused in float32 under tp, cp or etp (RouterFlags.test.ts): here the mappings it accepts.
  test("agrees in float32 on dp, pp and ep, and in float64 under tp 2 x cp 2 with etp 2", async () => {
    const reorderingFree = "--world 8 --tp 1 --cp 1 --pp 2 --ep 2 --hidden 16 --seq 8 --global-batch 8".split(" ")
    const f32 = await run(["verify", ...reorderingFree, "--steps", "3", "--force-load-balancing"])
    expect(f32.status, f32.out + f32.err).toBe(0)
    const folded = "--world 4 --tp 2 --cp 2 --pp 1 --ep 2 --etp 2 --hidden 16 --seq 8 --global-batch 4".split(" ")
    const f64 = await run(["verify", ...folded, "--dtype", "float64", "--steps", "3", "--force-load-balancing"])
    expect(f64.status, f64.out + f64.err).toBe(0)
  }, 60_000)
})

describe("pleat verify on worker threads (the ranks report their shards to the driver)", () => {
  test("agrees in float64, and names a planted missing synchronisation", async () => {
    const ok = await run(["verify", ...model, "--dtype", "float64", "--steps", "2", "--backend", "threads"])
    expect(ok.status, ok.out + ok.err).toBe(0)
    expect(ok.out.match(summary)?.slice(1)).toEqual(["float64", "1.0e-14", "1.0e-12", "OK"])
    process.env.PLEAT_FAULT_SKIP_SYNC = "layers.0.wq"
    const bad = await run(["verify", ...model, "--dtype", "float64", "--steps", "1", "--backend", "threads-zero-copy"])
    expect(bad.status, bad.out + bad.err).toBe(1)
    expect(bad.out).toMatch(/MISMATCH: the gradient of layers\.0\.wq at step 1/)
  }, 120_000)
})

describe("pleat verify with the ranks on a device (sim: the optimizer, weights, gradients and moments kept there)", () => {
  test("agrees in float32 with the replicated and the distributed optimizer, and compares gradients read back from the device", async () => {
    for (const optimizer of [[], ["--distributed-optimizer"]]) {
      const r = await run(["verify", ...model, "--steps", "2", "--device", "sim", "--log", "json", ...optimizer])
      expect(r.status, r.out + r.err).toBe(0)
      const lines = r.out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { gradient?: { error: number } })
      // Rounding differences, not zeros: the device's gradients reached the comparison.
      for (const step of lines.slice(0, 2)) expect(step.gradient?.error).toBeGreaterThan(0)
      expect(lines[2]).toMatchObject({ verdict: "OK", failed: [] })
    }
    process.env.PLEAT_FAULT_SKIP_SYNC = "layers.0.wq"
    const bad = await run(["verify", ...model, "--steps", "1", "--device", "sim"])
    expect(bad.status, bad.out + bad.err).toBe(1)
    expect(bad.out).toMatch(/MISMATCH: the gradient of layers\.0\.wq at step 1/)
  }, 60_000)
})

describe("pleat verify refuses what it cannot honour (exit 2, one line, before any work)", () => {
  test("--world 1 would compare a run with itself", async () => {
    const r = await run(["verify", "--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"])
    expect(r.status).toBe(2)
    expect(r.out).toBe("")
    expect(r.err.trim().split("\n")).toHaveLength(1)
    expect(r.err).toContain("--world: 1 leaves nothing to verify")
  })

  test("--save, --trace and a log level are named, all at once", async () => {
    const r = await run(["verify", ...model, "--save", "/tmp/pleat-verify-never", "--trace", "/tmp/pleat-verify-never.json", "--log-level", "debug"])
    expect(r.status).toBe(2)
    expect(r.out).toBe("")
    expect(r.err.trim().split("\n")).toHaveLength(1)
    for (const flag of ["--save", "--trace", "--log-level"]) expect(r.err).toContain(`${flag}: `)
  })

  test("the usage says what is compared, the tolerances and what is refused", async () => {
    const r = await run(["verify", "--help"])
    expect(r.status).toBe(0)
    for (const text of ["lockstep", "float32", "gradients 1.0e-4", "float64", "--world 1", "--save, --resume, --trace"]) expect(r.out).toContain(text)
  })
})
