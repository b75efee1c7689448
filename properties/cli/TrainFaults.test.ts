// `pleat train` when a rank fails mid-run (issue 11, items 5 and 6): a NaN gradient, a
// non-finite loss or a killed worker (injected with the test-only PLEAT_FAULT, src/train/Fault.ts)
// exits 1 with one line on stderr naming the rank, the step and the cause and the last
// checkpoint written, not a stack trace; that checkpoint resumes.
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"

const model = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]

const run = async (argv: ReadonlyArray<string>, fault?: string) => {
  if (fault !== undefined) process.env.PLEAT_FAULT = fault
  try {
    const io = memoryIo()
    const status = await Cli.run(argv, io)
    return { status, out: io.out, err: io.err }
  } finally {
    delete process.env.PLEAT_FAULT
  }
}

afterAll(() => ThreadsJob.shutdown())

describe("pleat train with a failing rank", () => {
  for (const [backend, fault, rank, step, cause] of [
    ["local", "nan@1:3", 1, 3, /gradient of \S+ is NaN after the backward/],
    ["threads", "nan@0:3", 0, 3, /gradient of \S+ is NaN after the backward/],
    ["local", "loss@1:3", 1, 3, /the rank's loss share is NaN/],
    ["threads", "kill@1:3", 1, 3, /the worker of rank 1 exited with code 70 before its program finished/],
  ] as const) {
    test(`${fault} on ${backend}: exit 1, one line naming rank, step and cause; the checkpoint resumes`, async () => {
      const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-train-faults-")), "ckpt")
      const failed = await run(["train", ...model, "--backend", backend, "--steps", "5", "--save", dir, "--save-every", "2"], fault)
      expect(failed.status).toBe(1)
      const lines = failed.err.trim().split("\n")
      expect(lines).toHaveLength(1)
      const line = lines[0] as string
      expect(line).toMatch(new RegExp(`^pleat train: rank ${rank} failed at step ${step}: `))
      expect(line).toMatch(cause)
      expect(line).toContain(`last checkpoint written: step 2 in ${path.join(dir, "step-00000002")}`)
      expect(line).not.toMatch(/internal error|\n\s+at /)
      const resumed = await run(["train", ...model, "--backend", backend, "--steps", "5", "--resume", dir])
      expect(resumed.status).toBe(0)
      expect(resumed.out).toMatch(/final loss \d/)
    }, 120_000)
  }
})
