#!/usr/bin/env node
// install: what `npm install` / `npm ci` runs in pleat's folder, in a checkout and in a user's
// project alike. It builds the native addons with cmake-js (cuda/ into build/Release:
// pleat_cpu always, pleat_cuda where nvcc is found, pleat_mpi where MPI is; see
// cuda/CMakeLists.txt), then, in a checkout (src/ and TypeScript present), compiles src/ to
// dist/. An installed package ships dist/ (built by `npm pack`'s prepack), so a user needs no
// TypeScript, only cmake and a C++ compiler.
//
// Environment: PLEAT_WITH_CUDA=OFF or PLEAT_WITH_MPI=OFF skip an optional addon.
// `node scripts/install.mjs --native` (npm run build:native) builds the addons only.
//
// CMake is configured on every run, not only when build/ is new: `cmake-js compile` on an
// existing build/ only rebuilds, so MPI or nvcc installed after the first `npm ci` was never
// found (what `pleat doctor` tells a user to do: install MPI, then npm run build:native).
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(path.join(root, "package.json"))

const run = (what, args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" })
  if (r.status !== 0) {
    console.error(`pleat install: ${what} failed (exit ${r.status ?? r.signal}); see the output above`)
    process.exit(r.status ?? 1)
  }
}

const cmakeJs = path.join(path.dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js")
const options = ["PLEAT_WITH_CUDA", "PLEAT_WITH_MPI"].filter((name) => process.env[name] !== undefined).map((name) => `--CD${name}=${process.env[name]}`)
run("the native configure (cmake-js)", [cmakeJs, "configure", "--directory", "cuda", "--out", "build", ...options])
run("the native build (cmake-js)", [cmakeJs, "build", "--directory", "cuda", "--out", "build"])
if (process.argv.includes("--native")) process.exit(0)

const checkout = existsSync(path.join(root, "src", "api", "index.ts")) && existsSync(path.join(root, "tsconfig.build.json"))
if (checkout) {
  let tsc
  try {
    const manifest = require.resolve("typescript/package.json")
    tsc = path.join(path.dirname(manifest), require(manifest).bin.tsc)
  } catch {
    tsc = undefined
  }
  if (tsc === undefined) console.error("pleat install: TypeScript is not installed, so src/ was not compiled (run npm ci in the checkout)")
  else run("the TypeScript build", [tsc, "-p", "tsconfig.build.json"])
}
