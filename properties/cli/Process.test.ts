// The real process: exit statuses and streams of `pleat` run as a program, from source and as built.
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"

const root = path.resolve(import.meta.dirname, "../..")
const fromSource = (args: ReadonlyArray<string>) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: root, encoding: "utf8" })

describe("pleat as a process", () => {
  test("a large mapping comes out whole on a pipe, status 0", () => {
    const r = fromSource(["groups", "--world", "4096", "--tp", "8", "--cp", "2", "--pp", "4", "--ep", "16", "--etp", "1", "--json"])
    expect(r.status).toBe(0)
    const json = JSON.parse(r.stdout)
    expect(json.ranks.length).toBe(4096)
    expect(json.sizes.edp).toBe(64)
  })

  test("bad input: status 2, one line on stderr, no stack trace", () => {
    const r = fromSource(["groups", "--world", "12", "--tp", "8"])
    expect(r.status).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(r.stderr).toMatch(/^pleat groups: world: 12 is not divisible by tp\*cp\*pp/)
  })

  test("the built program (npm ci builds dist/) runs the demo and writes its picture", () => {
    const main = path.join(root, "dist/cli/main.js")
    expect(existsSync(main), "dist/cli/main.js is missing: run npm run build").toBe(true)
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-demo-"))
    const svg = path.join(dir, "fold.svg")
    const r = spawnSync(process.execPath, [main, "demo", "--svg", svg], { encoding: "utf8" })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(svg)
    expect(readFileSync(svg, "utf8")).toContain("<svg")
  })
})
