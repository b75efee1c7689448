#!/usr/bin/env node
// docs: the API reference of pleat's public entry points (`pleat`: src/api/index.ts, and
// `pleat/testing`: src/testing/index.ts), generated from the doc comments by TypeDoc into
// docs/api/ (open docs/api/index.html). TypeDoc reads TypeScript through the compiler's
// JavaScript API, which TypeScript 7 (pleat's compiler) no longer ships, so the tool is kept in
// its own folder, .tools/docs/, with TypeScript 6 beside it: installed from the npm registry on
// the first run, pinned below. Fails on any TypeDoc warning (a public signature naming a type
// that is not exported, a broken link), so the reference stays complete.
//
// Usage: npm run docs [-- OUTDIR]
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const tools = path.join(root, ".tools", "docs")
const pinned = { typedoc: "0.28.20", typescript: "6.0.3" }
const out = path.resolve(process.argv[2] ?? path.join(root, "docs", "api"))

const typedoc = path.join(tools, "node_modules", "typedoc", "bin", "typedoc")
if (!existsSync(typedoc)) {
  mkdirSync(tools, { recursive: true })
  writeFileSync(path.join(tools, "package.json"), `${JSON.stringify({ name: "pleat-docs-tools", private: true, dependencies: pinned }, null, 2)}\n`)
  const installed = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: tools, stdio: "inherit" })
  if (installed.status !== 0) {
    console.error(`docs: installing TypeDoc ${pinned.typedoc} into ${tools} failed (it needs the npm registry once)`)
    process.exit(1)
  }
}
const args = [
  typedoc,
  "--entryPoints",
  "src/api/index.ts",
  "--entryPoints",
  "src/testing/index.ts",
  "--tsconfig",
  "tsconfig.build.json",
  "--out",
  out,
  "--name",
  "pleat",
  "--readme",
  "none",
  "--disableSources",
  "--skipErrorChecking",
  "--intentionallyNotExported",
  "Ffn",
  "--treatWarningsAsErrors",
]
const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" })
process.exit(r.status ?? 1)
