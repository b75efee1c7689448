// scripts/check-spreads.mjs on small planted trees: it reports exactly the object literals of the
// per-step folders that open with a spread and add members after it, honours the `// once a job:`
// mark, and leaves the once-a-job folders alone. And the engine fact it rests on: the forms it
// asks for keep one hidden class, where (on Node 20) the form it refuses makes one a call.
import { spawnSync } from "node:child_process"
import path from "node:path"
import { describe, expect, test } from "vitest"
import { removeTreesAfterEach, repo, runOnTree } from "./PlantedTree.js"

const script = path.join(repo, "scripts", "check-spreads.mjs")
removeTreesAfterEach()

/** The script's verdict on a tree made of `files`: its status and the places it names (file:line). */
const spreadsIn = (files: Record<string, string>) => {
  const { status, lines } = runOnTree("check-spreads.mjs", files)
  return { status, lines: lines.map((l) => l.split(": ")[0]) }
}

describe("check-spreads", () => {
  test("a leading spread with members after it is reported, in any per-step folder; the forms that keep one hidden class are not", () => {
    const { status, lines } = spreadsIn({
      "src/tensor/A.ts": [
        "declare const a: { readonly x: number }",
        "declare const c: { readonly y: number }",
        "export const bad1 = { ...a, b: 1 }",
        "export const ok1 = { ...a }",
        "export const ok2 = { b: 1, ...a }",
        "export const ok3 = { z: 1, ...a, b: 2 }",
        "export const bad2 = (n: number) => ({",
        "  ...a,",
        "  ...c,",
        "  n,",
        "})",
        "",
      ].join("\n"),
      "src/train/B.ts": "declare const a: { readonly x: number }\nexport const f = () => [{ ...a, y: 1 }]\n",
    })
    expect(lines).toEqual(["src/tensor/A.ts:3", "src/tensor/A.ts:7", "src/train/B.ts:2"])
    expect(status).toBe(1)
  })

  test("the `// once a job:` mark on the line before exempts a literal; the cli folder is not checked", () => {
    const { status, lines } = spreadsIn({
      "src/runtime/R.ts": [
        "declare const a: { readonly x: number }",
        "// once a job: the wrapper",
        "export const wrapped = { ...a, y: 1 }",
        "// once a job:",
        "export const unexplained = { ...a, y: 2 }",
        "",
      ].join("\n"),
      "src/cli/C.ts": "declare const a: { readonly x: number }\nexport const c = { ...a, y: 1 }\n",
    })
    expect(lines).toEqual(["src/runtime/R.ts:5"])
    expect(status).toBe(1)
  })

  test("a clean tree passes with one summary line", () => {
    const result = spawnSync(process.execPath, [script, repo], { encoding: "utf8", timeout: 60_000 })
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/^spreads: no object literal/)
  })

  test("the written-out and spread-last forms keep one hidden class over many calls; on Node 20 a leading spread with a member after it makes one a call", () => {
    const probe = [
      "const make = () => ({ name: 'x', size: 1, over: [] })",
      "const forms = {",
      "  leading: (a, i) => ({ ...a, b: i }),",
      "  last: (a, i) => ({ b: i, ...a }),",
      "  middle: (a, i) => ({ z: 1, ...a, b: i }),",
      "  written: (a, i) => ({ name: a.name, size: a.size, over: a.over, b: i }),",
      "}",
      "const fresh = {}",
      "for (const [name, f] of Object.entries(forms)) {",
      "  let previous = f(make(), 0), count = 0",
      "  for (let i = 1; i < 2000; i++) { const o = f(make(), i); if (!%HaveSameMap(o, previous)) count++; previous = o }",
      "  fresh[name] = count",
      "}",
      "console.log(JSON.stringify(fresh))",
    ].join("\n")
    const result = spawnSync(process.execPath, ["--allow-natives-syntax", "-e", probe], { encoding: "utf8", timeout: 60_000 })
    const fresh = JSON.parse(result.stdout) as Record<string, number>
    expect(fresh.last).toBeLessThanOrEqual(1)
    expect(fresh.middle).toBeLessThanOrEqual(1)
    expect(fresh.written).toBeLessThanOrEqual(1)
    if (process.versions.node.startsWith("20.")) expect(fresh.leading).toBeGreaterThan(1000)
  })
})
