#!/usr/bin/env node
// `npm test`: the guardrails, then every test suite, then one closing line `N passed, N failed`.
// Each guardrail counts as one check, so that a failing one shows in the closing line too:
//   typecheck     tsc -p tsconfig.json
//   layers        scripts/check-layers.mjs: each folder of src/ imports only from layers below it
//   format+lint   biome ci (biome.jsonc): the house format, and the linter with warnings as errors
//   dead exports  scripts/dead-exports.mjs: every export of src/ is used somewhere
//   spreads       scripts/check-spreads.mjs: no `{ ...a, b }` in the code a step runs
// All of them together take seconds; the suites take the rest.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const bin = (name) => path.join(root, "node_modules", ".bin", name)
const extra = process.argv.slice(2)

let passed = 0
let failed = 0

const guardrail = (title, command, args) => {
  process.stdout.write(`${title}\n`)
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env: { ...process.env, NO_COLOR: "1" } })
  if (result.status === 0) passed++
  else {
    failed++
    process.stdout.write(`${title}: FAILED\n`)
  }
}

guardrail("typecheck: tsc -p tsconfig.json", bin("tsc"), ["-p", "tsconfig.json", "--noEmit"])
guardrail("layers: node scripts/check-layers.mjs", process.execPath, [path.join(root, "scripts", "check-layers.mjs")])
guardrail("format and lint: biome ci --error-on-warnings", bin("biome"), ["ci", "--error-on-warnings", "--colors=off", "--max-diagnostics=50"])
guardrail("dead exports: node scripts/dead-exports.mjs", process.execPath, [path.join(root, "scripts", "dead-exports.mjs")])
guardrail("spreads: node scripts/check-spreads.mjs", process.execPath, [path.join(root, "scripts", "check-spreads.mjs")])

// The MPI suites (properties/comm/mpi, properties/train/MpiTrain.prop.ts, examples/06) need
// mpirun and the MPI addon; say here, once, when they will be skipped.
const mpirun = spawnSync("mpirun", ["--version"], { encoding: "utf8" })
const mpiAddon = existsSync(path.join(root, "build", "Release", "pleat_mpi.node"))
if (mpirun.error !== undefined || mpirun.status !== 0) {
  process.stdout.write("MPI tests: skipped (no mpirun on PATH; Debian: apt-get install openmpi-bin libopenmpi-dev, then npm run build:native)\n")
} else if (!mpiAddon) {
  process.stdout.write("MPI tests: skipped (pleat_mpi.node is not built: CMake found no MPI; install libopenmpi-dev, then npm run build:native)\n")
} else {
  process.stdout.write(`MPI tests: on (${(mpirun.stdout ?? "").split("\n")[0]})\n`)
}

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
