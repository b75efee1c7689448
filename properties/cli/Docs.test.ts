// The API reference: `npm run docs` generates it from the doc comments of the public entry points
// (TypeDoc, kept in .tools/docs/), with no warning (every type a public signature names is public),
// and it documents both entry points and the kit's check.
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, expect, test } from "vitest"

const root = path.resolve(import.meta.dirname, "../..")
const out = mkdtempSync(path.join(tmpdir(), "pleat-docs-"))
afterAll(() => rmSync(out, { recursive: true, force: true }))

test("npm run docs writes the reference of pleat and pleat/testing", () => {
  const r = spawnSync(process.execPath, [path.join(root, "scripts", "docs.mjs"), out], { cwd: root, encoding: "utf8", timeout: 300_000 })
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
  expect(`${r.stdout}${r.stderr}`).not.toMatch(/\[warning\]/)
  expect(existsSync(path.join(out, "modules", "pleat.html"))).toBe(true)
  expect(existsSync(path.join(out, "modules", "pleat_testing.EqualsOneRank.html"))).toBe(true)
  const page = readFileSync(path.join(out, "functions", "pleat_testing.EqualsOneRank.check.html"), "utf8")
  expect(page).toContain("shrunk mapping")
}, 300_000)
