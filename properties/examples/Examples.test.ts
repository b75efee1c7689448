// Every example runs, and prints the lines its header promises (GPU examples are gated; MPI
// examples, `NN-mpi-*.ts`, run under mpirun with 4 processes where mpirun and the MPI addon are).
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { describe, expect, test } from "vitest"
import { missing, mpirun } from "../comm/mpi/mpirun.js"

const root = path.resolve(import.meta.dirname, "../..")
const dir = path.join(root, "examples")
const examples = readdirSync(dir).filter((f) => /^\d\d-.*\.ts$/.test(f) && !f.includes("-gpu"))

/** The `//   ` lines under `// Expected output` in the header. */
const expectedLines = (source: string): Array<string> => {
  const lines = source.split("\n")
  const start = lines.findIndex((l) => l.startsWith("// Expected output"))
  if (start < 0) return []
  const out: Array<string> = []
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith("//   ")) break
    out.push(line.slice(5))
  }
  return out
}

describe("examples", () => {
  test("there are examples to run", () => {
    expect(examples.length).toBeGreaterThan(0)
  })
  const noMpi = missing()
  for (const file of examples.filter((f) => f.includes("-mpi-"))) {
    test.skipIf(noMpi !== undefined)(
      `${file} (mpirun -np 4)`,
      async () => {
        const expected = expectedLines(readFileSync(path.join(dir, file), "utf8"))
        expect(expected.length, "the header lists its expected output").toBeGreaterThan(0)
        const r = await mpirun(4, [path.join(dir, file)], 240_000)
        expect(r.code, r.stderr).toBe(0)
        for (const line of expected) expect(r.stdout).toContain(line)
      },
      300_000,
    )
  }
  for (const file of examples.filter((f) => !f.includes("-mpi-"))) {
    test(file, () => {
      const expected = expectedLines(readFileSync(path.join(dir, file), "utf8"))
      expect(expected.length, "the header lists its expected output").toBeGreaterThan(0)
      const r = spawnSync(process.execPath, ["--import", "tsx", path.join("examples", file)], { cwd: root, encoding: "utf8" })
      expect(r.status, r.stderr).toBe(0)
      for (const line of expected) expect(r.stdout).toContain(line)
    })
  }
})
