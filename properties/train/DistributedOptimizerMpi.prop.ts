// The distributed optimizer on MPI processes (its reduce-scatters and all-gathers of uneven
// parts, on three groups at once, crossing processes): 4 processes train with
// --distributed-optimizer as one process does (float64, 1e-12), and the checkpoint they write
// (each owned part once) resumes in one process under another mapping without it. Skipped,
// with a line saying why, without mpirun or the MPI addon.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"
import { local, losses, near } from "./mpiKit.js"
import { missing, mpirun } from "../comm/mpi/mpirun.js"
import { pleatMain as main } from "../support/pleatProcess.js"

const why = missing()
if (why !== undefined) console.log(`MPI distributed-optimizer tests skipped: ${why}`)

const model = ["--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "8", "--log", "json", "--dtype", "float64", "--seed", "29"]
// dense state over dp-cp (2), norms and routers over tp-dp-cp (4), experts over edp (2).
const four = ["--world", "4", "--tp", "2", "--cp", "2", "--pp", "1", "--ep", "2"]
const two = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1"]
const dir = mkdtempSync(path.join(tmpdir(), "pleat-mpi-distopt-"))

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe.skipIf(why !== undefined)("the distributed optimizer on MPI processes", () => {
  test("4 processes train as one process does; one process resumes their checkpoint under another mapping without it", async () => {
    const save = path.join(dir, "ckpt")
    const run = await mpirun(4, [main, "train", ...model, ...four, "--steps", "2", "--distributed-optimizer", "--save", save], 240_000)
    expect(run.code, run.stderr).toBe(0)
    const whole = await local([...model, ...four, "--steps", "4", "--distributed-optimizer"])
    near(losses(run.stdout), whole.slice(0, 2))
    near(await local([...model, ...two, "--steps", "4", "--resume", save]), whole.slice(2))
  }, 600_000)
})
