import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import * as LaunchCommand from "../../src/cli/LaunchCommand.js"
import * as GcTuning from "../../src/runtime/GcTuning.js"

const root = new URL("../../", import.meta.url)
const text = (file: string) => readFileSync(new URL(file, root), "utf8")

describe("GcTuning: every way pleat starts node carries its node flags", () => {
  it("the pleat executable's #! line, npm start and npm run bench", () => {
    const shebang = text("src/cli/main.ts").split("\n")[0] ?? ""
    const scripts = (JSON.parse(text("package.json")) as { scripts: Record<string, string> }).scripts
    for (const line of [shebang, scripts.start ?? "", scripts.bench ?? ""]) {
      expect(line.split(/\s+/)).toEqual(expect.arrayContaining([...GcTuning.nodeFlags]))
    }
    expect(shebang.startsWith("#!/usr/bin/env -S node ")).toBe(true)
  })

  it("active() reads the flags from execArgv", () => {
    expect(GcTuning.active([...GcTuning.nodeFlags, "--import", "tsx"])).toBe(true)
    expect(GcTuning.active(["--import", "tsx"])).toBe(false)
  })
  it("pleat launch's rank command: node, the flags, then the entry point", () => {
    const program = LaunchCommand.rankProgram()
    expect(program.slice(0, 1 + GcTuning.nodeFlags.length)).toEqual([process.execPath, ...GcTuning.nodeFlags])
    expect(program[program.length - 1]).toMatch(/main\.(ts|js)$/)
  })
})
