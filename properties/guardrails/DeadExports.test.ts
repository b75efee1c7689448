// scripts/dead-exports.mjs on small planted trees: it reports exactly the exports no other file
// names, and it follows the ways this codebase names them (named imports, namespace members,
// barrels with `export * as`, import types, worker entry points named by URL).
import { describe, expect, test } from "vitest"
import { removeTreesAfterEach, runOnTree } from "./PlantedTree.js"

removeTreesAfterEach()

/** The script's verdict on a tree made of `files` (path relative to the root -> text). */
const deadIn = (files: Record<string, string>) => runOnTree("dead-exports.mjs", files)

describe("dead-exports", () => {
  test("named and namespace uses make an export live; an export used only in its own file is dead", () => {
    const { status, lines } = deadIn({
      "src/a/A.ts": [
        "export interface Options { readonly n: number }",
        "export const viaName = (o: Options) => o.n",
        "export const viaMember = 1",
        "export const viaType = 2",
        "export const onlyHere = 3",
        "export const nowhere = onlyHere + 1",
        "",
      ].join("\n"),
      "src/b/B.ts": ['import { viaName } from "../a/A.js"', 'import * as A from "../a/A.js"', "export const b = viaName({ n: A.viaMember })", ""].join("\n"),
      "properties/b/B.test.ts": ['import { b } from "../../src/b/B.js"', 'export type T = typeof import("../../src/a/A.js").viaType', "console.log(b)", ""].join("\n"),
    })
    expect(lines).toEqual(["src/a/A.ts: nowhere", "src/a/A.ts: onlyHere"])
    expect(status).toBe(1)
  })

  test("an import of the build (dist/X.js, as the bench's) uses the source's export", () => {
    const { status, lines } = deadIn({
      "src/a/A.ts": "export const timed = 1\nexport const untimed = 2\n",
      "bench/suites/s.ts": 'import * as A from "../../dist/a/A.js"\nconsole.log(A.timed)\n',
    })
    expect(lines).toEqual(["src/a/A.ts: untimed"])
    expect(status).toBe(1)
  })

  test("members reached through a barrel's `export * as` are live, the others are not", () => {
    const { status, lines } = deadIn({
      "src/m/Grid.ts": "export const used = 1\nexport const unused = 2\n",
      "src/m/index.ts": 'export * as Grid from "./Grid.js"\n',
      "examples/e.ts": 'import { Grid } from "../src/m/index.js"\nconsole.log(Grid.used)\n',
    })
    expect(lines).toEqual(["src/m/Grid.ts: unused"])
    expect(status).toBe(1)
  })

  test("a module named by new URL(..., import.meta.url), or exporting its own URL, is an entry point: all its exports are live", () => {
    const { status, lines } = deadIn({
      "src/w/worker.ts": "export const program = 1\nexport const other = 2\n",
      "src/w/Pool.ts": 'export const start = () => new URL("./worker.js", import.meta.url)\n',
      "src/w/Host.ts": "export const moduleUrl = import.meta.url\nexport const host = 1\n",
      "scripts/run.ts": 'import { start } from "../src/w/Pool.js"\nstart()\n',
    })
    expect(lines).toEqual([])
    expect(status).toBe(0)
  })

  test("an export a module names beside import.meta.url (a rank program) is live, its neighbours are not", () => {
    const { status, lines } = deadIn({
      "src/r/Ref.ts": "export const make = (url: string, name: string) => ({ url, name })\n",
      "src/t/Program.ts": [
        'import { make } from "../r/Ref.js"',
        "export const program = () => 1",
        "export const unused = () => 2",
        'export const of = () => make(import.meta.url, "program")',
        "",
      ].join("\n"),
      "examples/e.ts": 'import { of } from "../src/t/Program.js"\nconsole.log(of())\n',
    })
    expect(lines).toEqual(["src/t/Program.ts: unused"])
    expect(status).toBe(1)
  })
})
