import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import * as LaunchCommand from "../../src/cli/LaunchCommand.js"
import * as ProcessTuning from "../../src/runtime/ProcessTuning.js"

const root = new URL("../../", import.meta.url)
const text = (file: string) => readFileSync(new URL(file, root), "utf8")

describe("ProcessTuning: every way pleat starts node carries its node flags and environment", () => {
  it("the pleat executable's #! line, npm start and npm run bench", () => {
    const shebang = text("src/cli/main.ts").split("\n")[0] ?? ""
    const scripts = (JSON.parse(text("package.json")) as { scripts: Record<string, string> }).scripts
    for (const line of [scripts.start ?? "", scripts.bench ?? ""]) {
      expect(line.split(/\s+/)).toEqual(expect.arrayContaining([...ProcessTuning.environment, ...ProcessTuning.nodeFlags]))
    }
    expect(shebang.split(/\s+/)).toEqual(expect.arrayContaining([...ProcessTuning.environment, ...ProcessTuning.shebangFlags]))
    expect(ProcessTuning.nodeFlags).toEqual(expect.arrayContaining([...ProcessTuning.shebangFlags]))
    expect(shebang.startsWith("#!/usr/bin/env -S ")).toBe(true)
    // Linux before 5.1 cuts a #! line at 127 bytes.
    expect(Buffer.byteLength(shebang)).toBeLessThanOrEqual(127)
  })

  it("active() reads the flags from execArgv", () => {
    expect(ProcessTuning.active([...ProcessTuning.nodeFlags, "--import", "tsx"])).toBe(true)
    expect(ProcessTuning.active(["--import", "tsx"])).toBe(false)
  })
  it("pleat launch's rank command: env with the environment, node, the flags, then the entry point", () => {
    const program = LaunchCommand.rankProgram()
    const node = ["env", ...ProcessTuning.environment, process.execPath, ...ProcessTuning.nodeFlags]
    expect(program.slice(0, node.length)).toEqual(node)
    expect(program[program.length - 1]).toMatch(/main\.(ts|js)$/)
  })
  it("the threads backend starts its workers under the flags (workers refuse V8 flags in execArgv)", () => {
    const args = [...ProcessTuning.nodeFlags, "--max-old-space-size=4096", "--import", "tsx", "src/cli/main.ts", "train", "--backend", "threads", "--steps", "2"]
    const run = spawnSync("env", [...ProcessTuning.environment, process.execPath, ...args], { cwd: fileURLToPath(root), encoding: "utf8", timeout: 120_000 })
    expect(run.stderr).not.toMatch(/ERR_WORKER_INVALID_EXEC_ARGV/)
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/final loss/)
  }, 150_000)
  it("the built program's threads backend under a user's V8 flags (its workers inherit them)", () => {
    const main = fileURLToPath(new URL("dist/cli/main.js", root))
    const args = ["--max-old-space-size=4096", "--expose-gc", "--stack-size=984", main, "train", "--backend", "threads", "--steps", "2"]
    const run = spawnSync(process.execPath, args, { cwd: fileURLToPath(root), encoding: "utf8", timeout: 120_000 })
    expect(run.stderr).not.toMatch(/ERR_WORKER_INVALID_EXEC_ARGV|internal error/)
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/final loss/)
  }, 150_000)
})
