// Training on the MPI backend, one rank per process under mpirun, against the same command in
// one process (--backend local): the same per-step losses in float64 (to 1e-12; MPI sums in its
// own order), one trace holding every process's spans, a checkpoint written by 4 processes that 2 processes resume under another
// mapping exactly as one process does, packed documents with the per-token loss, a world that disagrees with the launch refused with
// exit 2 and one line from rank 0, and a rank's process killed mid-run ending the whole job
// within 60 s with no process left. Skipped, with a line saying why, without mpirun or the
// MPI addon.
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"
import { local, losses, near } from "./mpiKit.js"
import { abortedWith, collect, missing, mpirun } from "../comm/mpi/mpirun.js"
import { pleatMain as main } from "../support/pleatProcess.js"

const why = missing()
if (why !== undefined) console.log(`MPI training tests skipped: ${why}`)

const model = ["--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "8", "--log", "json", "--dtype", "float64", "--seed", "23"]
const four = ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2"]
const two = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1"]
const dir = mkdtempSync(path.join(tmpdir(), "pleat-mpi-train-"))

afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The per-step losses of `--log json` output. */

/** The pids of a process's living descendants. */
const descendants = (pid: number): Array<number> => {
  let out = ""
  try {
    out = execFileSync("ps", ["-e", "-o", "pid=,ppid="], { encoding: "utf8" })
  } catch {
    return []
  }
  const children = new Map<number, Array<number>>()
  for (const line of out.trim().split("\n")) {
    const [p, pp] = line.trim().split(/\s+/).map(Number) as [number, number]
    children.set(pp, [...(children.get(pp) ?? []), p])
  }
  const found: Array<number> = []
  const visit = (p: number) => {
    for (const c of children.get(p) ?? []) {
      found.push(c)
      visit(c)
    }
  }
  visit(pid)
  return found
}

describe.skipIf(why !== undefined)("training on MPI processes", () => {
  test("4 processes train as one process does; 2 processes resume their checkpoint under another mapping", async () => {
    const save = path.join(dir, "ckpt")
    const trace = path.join(dir, "trace.json")
    const run = await mpirun(4, [main, "train", ...model, ...four, "--steps", "3", "--save", save, "--trace", trace], 240_000)
    expect(run.code, run.stderr).toBe(0)
    // Rank 0 writes one trace with every process's spans.
    const events = (JSON.parse(readFileSync(trace, "utf8")) as { traceEvents: Array<{ pid?: number }> }).traceEvents
    expect([...new Set(events.map((e) => e.pid).filter((p) => p !== undefined))].sort()).toEqual([0, 1, 2, 3])
    near(losses(run.stdout), await local([...model, ...four, "--steps", "3"]))
    expect(existsSync(path.join(save, "latest"))).toBe(true)
    const resumed = await mpirun(2, [main, "train", ...model, ...two, "--steps", "5", "--resume", save], 240_000)
    expect(resumed.code, resumed.stderr).toBe(0)
    const got = losses(resumed.stdout)
    expect(got).toHaveLength(2)
    near(got, await local([...model, ...two, "--steps", "5", "--resume", save]))
  }, 600_000)

  test("packed documents with the per-token loss: 4 processes (tp 2 x cp 2) train as one process does", async () => {
    const flags = [...model, "--world", "4", "--tp", "2", "--cp", "2", "--pp", "1", "--ep", "2", "--steps", "3"]
    const documents = ["--eod-token", "5", "--reset-attention-mask", "--reset-position-ids", "--eod-mask-loss", "--calculate-per-token-loss"]
    const run = await mpirun(4, [main, "train", ...flags, ...documents], 240_000)
    expect(run.code, run.stderr).toBe(0)
    near(losses(run.stdout), await local([...flags, ...documents]))
  }, 300_000)

  test("pleat verify with the parallel run on 4 processes: agrees in float64, names a planted missing synchronisation", async () => {
    // cp 2: dense gradients such as layers.0.wq are summed over cp, so skipping one is a bug.
    const verify = [
      main,
      "verify",
      "--world",
      "4",
      "--tp",
      "1",
      "--cp",
      "2",
      "--pp",
      "2",
      "--ep",
      "2",
      "--layers",
      "2",
      "--hidden",
      "16",
      "--seq",
      "8",
      "--global-batch",
      "8",
      "--dtype",
      "float64",
      "--steps",
      "2",
    ]
    const ok = await mpirun(4, verify, 240_000)
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(ok.stdout).toContain(": OK")
    const bad = await mpirun(4, verify, 240_000, undefined, { PLEAT_FAULT_SKIP_SYNC: "layers.0.wq" })
    expect(bad.code, bad.stdout + bad.stderr).toBe(1)
    expect(bad.stdout).toMatch(/MISMATCH: the gradient of layers\.0\.wq at step \d/)
  }, 600_000)

  test("a rank that throws mid-step: rank 0 prints the diagnosis once, the job ends non-zero", async () => {
    // 240 s: a process whose MPI_Finalize waits for a peer that never ends is aborted by the
    // engine after the grace and a minute more (cuda/src/mpi/engine.cc); once, in a full test run
    // with another file beside this one on 2 cores, this job was still running at 120 s.
    const run = await mpirun(4, [main, "train", ...model, ...four, "--steps", "5"], 240_000, undefined, { PLEAT_FAULT: "throw@2:2" })
    expect(
      abortedWith(run, 1),
      `code ${run.code}, signal ${run.signal}; stderr: ${run.stderr
        .split("\n")
        .filter((l) => !l.startsWith("{"))
        .slice(-12)
        .join("\n")}`,
    ).toBe(true)
    const lines = run.stderr.split("\n").filter((l) => l.startsWith("pleat train:"))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain("rank 2 failed at step 2: injected fault (PLEAT_FAULT throw)")
  }, 300_000)

  test("the issue's commands: pleat launch -n 8 verifies the default-size folded mapping and trains as one process does", async () => {
    const launch = (args: ReadonlyArray<string>) => collect(process.execPath, [main, "launch", "-n", "8", "--", "pleat", ...args], 300_000)
    const verify = await launch(["verify", "--world", "8", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "4", "--dtype", "float64", "--steps", "2"])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
    const flags = ["--steps", "5", "--log", "json", "--dtype", "float64", "--seed", "4242"]
    const trained = await launch(["train", ...flags])
    expect(trained.code, trained.stderr).toBe(0)
    near(losses(trained.stdout), await local(flags))
  }, 600_000)

  test("a world that disagrees with the launch: exit 2 on every rank, one line from rank 0", async () => {
    const run = await mpirun(2, [main, "train", ...model, ...four, "--steps", "1"], 120_000)
    expect(run.code).toBe(2)
    expect(run.stdout).toBe("")
    const lines = run.stderr.split("\n").filter((l) => l.startsWith("pleat train:"))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain("--world: 4 does not match the launch")
  }, 200_000)

  test("SIGKILL to one rank's process mid-run ends the job within 60 s, non-zero, no process left", async () => {
    let mpirunPid = 0
    let killedAt = 0
    const running = mpirun(4, [main, "train", ...model, ...four, "--steps", "100000"], 240_000, (pid) => {
      mpirunPid = pid
    })
    // Wait until training runs (every rank process is up), then kill one rank's process.
    const started = performance.now()
    let ranks: Array<number> = []
    while (performance.now() - started < 120_000) {
      await new Promise((r) => setTimeout(r, 500))
      ranks = descendants(mpirunPid).filter((p) => {
        try {
          return execFileSync("ps", ["-o", "args=", "-p", String(p)], { encoding: "utf8" }).includes(main)
        } catch {
          return false
        }
      })
      if (ranks.length === 4) break
    }
    expect(ranks).toHaveLength(4)
    await new Promise((r) => setTimeout(r, 3000))
    killedAt = performance.now()
    process.kill(ranks[2] as number, "SIGKILL")
    const ended = await running
    expect(performance.now() - killedAt).toBeLessThan(60_000)
    expect(ended.code === 0 && ended.signal === null).toBe(false)
    // Gone, or a zombie waiting for a parent that reaps (a container's pid 1 may not).
    const alive = (p: number) => {
      try {
        return !execFileSync("ps", ["-o", "stat=", "-p", String(p)], { encoding: "utf8" })
          .trim()
          .startsWith("Z")
      } catch {
        return false
      }
    }
    // mpirun may return while its other ranks are still being torn down (its SIGTERM sent, the
    // process not yet gone: seen once on a loaded 2-core machine); a rank still there after 15 s
    // is a process left behind.
    const leftAfter = async (pids: () => Array<number>) => {
      const until = performance.now() + 15_000
      while (pids().length > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 250))
      return pids()
    }
    expect(await leftAfter(() => ranks.filter(alive))).toEqual([])
    expect(await leftAfter(() => descendants(mpirunPid).filter(alive))).toEqual([])
  }, 300_000)
})
