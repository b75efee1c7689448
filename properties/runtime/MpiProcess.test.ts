// MpiProcess.main under mpirun with 2 processes: every process exits with rank 0's command's
// status, and a command that throws ends the job at once with 1 and its error printed (the other
// process would otherwise wait for a status until MPI_Finalize's 60 s guard aborts the job).
// Skipped where mpirun or the MPI addon is missing.
import path from "node:path"
import { describe, expect, test } from "vitest"
import { missing, mpirun } from "../comm/mpi/mpirun.js"

const why = missing()
const program = path.join(import.meta.dirname, "mpiCommand.ts")

describe.skipIf(why !== undefined)("MpiProcess.main with 2 processes", () => {
  test("every process exits with the command's status", async () => {
    const ended = await mpirun(2, [program, "3"], 60_000)
    expect(ended.code, ended.stderr).toBe(3)
  }, 70_000)

  test("a command that throws: exit 1, its error on stderr, the other process ended at once", async () => {
    const ended = await mpirun(2, [program, "throw"], 60_000)
    expect(ended.code, ended.stderr).toBe(1)
    expect(ended.stderr).toContain("pleat: rank 0's command failed: Error: a command that fails on rank 0")
    expect(ended.stderr).not.toContain("MPI_Finalize did not return")
    expect(ended.ms).toBeLessThan(30_000)
  }, 70_000)
})
