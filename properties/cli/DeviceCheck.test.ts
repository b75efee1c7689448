// scripts/device-check.mjs, the GPU machine's checks, runs here too: without a device it writes
// a report saying so (one skipped entry naming why, none failed); with one, every check it ran
// passed. The report is final (partial false) with its summary; a budget of 0 s skips every
// check and records each one as not run, so a run cut short still says what it left out.
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { expect, test } from "vitest"
import * as Cuda from "../../src/native/Cuda.js"

const root = path.resolve(import.meta.dirname, "../..")
const built = existsSync(path.join(root, "dist/native/Cuda.js"))

interface Report {
  readonly device: { readonly available: boolean }
  readonly doctor: Record<string, { readonly available: boolean }>
  readonly partial: boolean
  readonly checks: ReadonlyArray<{ readonly name: string; readonly ok: boolean; readonly skipped?: boolean; readonly detail: unknown }>
  readonly summary: { readonly failed: ReadonlyArray<string>; readonly skipped: ReadonlyArray<string> }
  readonly notYet: ReadonlyArray<string>
}

const runCheck = (env: Record<string, string> = {}) => {
  const out = path.join(mkdtempSync(path.join(tmpdir(), "pleat-device-check-")), "report.json")
  const run = spawnSync(process.execPath, [path.join(root, "scripts/device-check.mjs"), out], { encoding: "utf8", timeout: 300_000, env: { ...process.env, ...env } })
  return { run, report: JSON.parse(readFileSync(out, "utf8")) as Report }
}

test.runIf(built)("device-check.mjs writes its report: the device as cudaStatus says, the doctor, the checks", () => {
  const { run, report } = runCheck()
  expect(run.status, run.stderr).toBe(0)
  const status = Cuda.cudaStatus()
  expect(report.device.available).toBe(status.available)
  expect(Object.keys(report.doctor).sort()).toEqual(["cpu", "cublas", "cuda", "mpi", "nccl"])
  expect(report.partial).toBe(false)
  if (status.available) expect(report.checks.filter((c) => !c.skipped).length).toBeGreaterThan(0)
  else expect(report.checks.map((c) => [c.name, c.skipped])).toEqual([["every device check", true]])
  expect(report.checks.filter((c) => !c.ok && !c.skipped)).toEqual([])
  expect(report.summary.failed).toEqual([])
  expect(report.notYet.length).toBeGreaterThan(0)
})

test.runIf(built && Cuda.cudaStatus().available)("device-check.mjs with no time left: every check recorded as not run, none lost", () => {
  const { report } = runCheck({ PLEAT_DEVICE_CHECK_SECONDS: "0" })
  expect(report.checks.length).toBeGreaterThan(0)
  expect(report.checks.every((c) => c.skipped === true && String(c.detail).includes("budget"))).toBe(true)
})
