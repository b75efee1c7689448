// scripts/device-check.mjs, the GPU machine's checks, runs here too: without a device it writes
// a report saying so, with no check run and none failed; with one, every check it ran passed.
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { expect, test } from "vitest"
import * as Cuda from "../../src/native/Cuda.js"

const root = path.resolve(import.meta.dirname, "../..")
const built = existsSync(path.join(root, "dist/native/Cuda.js"))

test.runIf(built)("device-check.mjs writes its report: the device as cudaStatus says, the doctor, the checks", () => {
  const out = path.join(mkdtempSync(path.join(tmpdir(), "pleat-device-check-")), "report.json")
  const run = spawnSync(process.execPath, [path.join(root, "scripts/device-check.mjs"), out], { encoding: "utf8", timeout: 300_000 })
  expect(run.status, run.stderr).toBe(0)
  const report = JSON.parse(readFileSync(out, "utf8")) as {
    device: { available: boolean }
    doctor: Record<string, { available: boolean }>
    checks: Array<{ name: string; ok: boolean }>
    notYet: Array<string>
  }
  const status = Cuda.cudaStatus()
  expect(report.device.available).toBe(status.available)
  expect(Object.keys(report.doctor).sort()).toEqual(["cpu", "cublas", "cuda", "mpi", "nccl"])
  if (status.available) expect(report.checks.length).toBeGreaterThan(0)
  else expect(report.checks).toEqual([])
  expect(report.checks.filter((c) => !c.ok)).toEqual([])
  expect(report.notYet.length).toBeGreaterThan(0)
})
