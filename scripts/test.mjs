#!/usr/bin/env node
// `npm test`: typecheck, then every test suite, then one closing line `N passed, N failed`.
// The typecheck counts as one check so that a type error shows in the closing line too.
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import path from "node:path"

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const bin = (name) => path.join(root, "node_modules", ".bin", name)
const extra = process.argv.slice(2)

let passed = 0
let failed = 0

process.stdout.write("typecheck: tsc -p tsconfig.json\n")
const tsc = spawnSync(bin("tsc"), ["-p", "tsconfig.json", "--noEmit"], { cwd: root, stdio: "inherit" })
if (tsc.status === 0) passed++
else failed++

const vitest = spawnSync(bin("vitest"), ["run", ...extra], {
  cwd: root,
  stdio: ["inherit", "pipe", "inherit"],
  env: { ...process.env, NO_COLOR: "1" },
  encoding: "utf8",
  maxBuffer: 256 * 1024 * 1024,
})
process.stdout.write(vitest.stdout ?? "")
const summary = /vitest: (\d+) passed, (\d+) failed/.exec(vitest.stdout ?? "")
if (summary) {
  passed += Number(summary[1])
  failed += Number(summary[2])
}
// A vitest that died before reporting, or exited non-zero without counting a failure, still fails.
if (!summary || (vitest.status !== 0 && Number(summary[2]) === 0)) failed++

process.stdout.write(`\n${passed} passed, ${failed} failed\n`)
process.exit(failed === 0 ? 0 : 1)
