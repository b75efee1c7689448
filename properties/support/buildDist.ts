// vitest's global setup: compiles src/ to dist/ (tsc -p tsconfig.build.json, a few seconds)
// before any test file runs. The tests that start pleat as a process run dist/cli/main.js, the
// program a user runs (properties/support/pleatProcess.ts), so it must be the code under test;
// starting it through a TypeScript loader instead cost about a second of CPU per process.
import { spawnSync } from "node:child_process"
import path from "node:path"
import { root } from "./pleatProcess.js"

export default function setup(): void {
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")
  const built = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, encoding: "utf8" })
  if (built.status !== 0)
    throw new Error(`tests: compiling src/ to dist/ failed (tsc -p tsconfig.build.json, exit ${built.status ?? built.signal}):\n${built.stdout}${built.stderr}`)
}
