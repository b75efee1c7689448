// The layer rule (scripts/check-layers.mjs, a counted check of `npm test`): it passes on the real
// tree, and on a temporary copy of src/ with an upward import planted it fails naming the file.
// Also planted: a type-only upward import, a folder placed in no layer, and a cycle between two
// folders of one layer; each must be reported.
import { spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, test } from "vitest"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const checker = path.join(repo, "scripts", "check-layers.mjs")

const runChecker = (root: string) => {
  const result = spawnSync(process.execPath, [checker, root], { encoding: "utf8", timeout: 60_000 })
  return { status: result.status, out: `${result.stdout}${result.stderr}` }
}

/** The first module (alphabetically) of a folder of src/, as a path relative to src/. */
const someModuleOf = (folder: string): string => {
  const name = readdirSync(path.join(repo, "src", folder))
    .filter((f) => f.endsWith(".ts"))
    .sort()[0]
  if (name === undefined) throw new Error(`src/${folder} has no module to import`)
  return `${folder}/${name}`
}

const copies: Array<string> = []
const copyOfSrc = (): string => {
  const root = mkdtempSync(path.join(tmpdir(), "pleat-layers-"))
  copies.push(root)
  cpSync(path.join(repo, "src"), path.join(root, "src"), { recursive: true })
  return root
}

afterEach(() => {
  for (const root of copies.splice(0)) rmSync(root, { recursive: true, force: true })
})

describe("check-layers", () => {
  test("passes on the tree as it is", () => {
    const { status, out } = runChecker(repo)
    expect(out).toMatch(/check-layers: \d+ modules, \d+ imports in src\/, none upward/)
    expect(status).toBe(0)
  })

  test("an import from mapping (lowest) up to cli (highest) fails, naming both files", () => {
    const root = copyOfSrc()
    const cli = someModuleOf("cli")
    const victim = path.join(root, "src", "mapping", "RankGrid.ts")
    writeFileSync(victim, `import "../${cli.replace(/\.ts$/, ".js")}"\n${readFileSync(victim, "utf8")}`)
    const { status, out } = runChecker(root)
    expect(status).toBe(1)
    expect(out).toContain(`src/mapping/RankGrid.ts imports src/${cli}: layer mapping (1) may import only from layers below it`)
  })

  test("a type-only import through import() from tensor up to runtime fails", () => {
    const root = copyOfSrc()
    const runtime = someModuleOf("runtime")
    writeFileSync(path.join(root, "src", "tensor", "PlantedUpward.ts"), `export type T = typeof import("../${runtime.replace(/\.ts$/, ".js")}")\n`)
    const { status, out } = runChecker(root)
    expect(status).toBe(1)
    expect(out).toContain(`src/tensor/PlantedUpward.ts imports src/${runtime}`)
  })

  test("a folder that is in no layer fails until it is placed", () => {
    const root = copyOfSrc()
    const dir = path.join(root, "src", "unplaced")
    mkdirSync(dir)
    writeFileSync(path.join(dir, "Unplaced.ts"), "export const importsNothing = 1\n")
    const { status, out } = runChecker(root)
    expect(status).toBe(1)
    expect(out).toContain("src/unplaced is in no layer")
  })

  test("two folders of one layer importing each other (a cycle) fail", () => {
    const root = copyOfSrc()
    writeFileSync(path.join(root, "src", "tensor", "PlantedA.ts"), `import { b } from "../native/PlantedB.js"\nexport const a = () => b\n`)
    writeFileSync(path.join(root, "src", "native", "PlantedB.ts"), `import { a } from "../tensor/PlantedA.js"\nexport const b = () => a\n`)
    const { status, out } = runChecker(root)
    expect(status).toBe(1)
    expect(out).toMatch(/folders native, tensor import each other in a cycle/)
  })
})
