// Small trees of planted files for the guardrail scripts' tests: each test writes the files it
// needs under a fresh temporary root, runs a script of scripts/ on it, and the trees go away
// after each test.
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach } from "vitest"

/** The repository's root. */
export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

const trees: Array<string> = []

/** Removes the trees planted during each test once it ends (call once at the top of a test file). */
export const removeTreesAfterEach = () =>
  afterEach(() => {
    for (const root of trees.splice(0)) rmSync(root, { recursive: true, force: true })
  })

/**
 * Runs `scripts/<script>` on a tree made of `files` (path relative to the root -> text); returns
 * its exit status and the lines of its stdout that name a file of src/.
 */
export const runOnTree = (script: string, files: Record<string, string>) => {
  const root = mkdtempSync(path.join(tmpdir(), "pleat-planted-"))
  trees.push(root)
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true })
    writeFileSync(path.join(root, rel), text)
  }
  const result = spawnSync(process.execPath, [path.join(repo, "scripts", script), root], { encoding: "utf8", timeout: 60_000 })
  return { status: result.status, lines: result.stdout.split("\n").filter((l) => l.startsWith("src/")) }
}
