#!/usr/bin/env node
// check-spreads: no object literal in the code a training step runs opens with a spread and then
// adds members, `{ ...a, b }` or `{ ...a, ...c }`. Node 20's V8 clones the spread object's
// hidden class for such a literal and cannot share what is added to the clone, so every call makes
// a new hidden class: about 1 us a call against 0.02 for a literal written out, a map to collect
// later, and every inline cache that reads such objects goes megamorphic and misses V8's stub cache
// (bench/README.md, train suite, twenty-seventh session: the default job made ~1,500 hidden classes
// a step this way). Write the fields out, or put the spread last (`{ b, ...a }`, where `a` holds no
// `b`), which reuses the hidden classes; `{ ...a }` alone is fine.
//
// Checked: the folders of src/ a step runs through. The command line, the planner, the public API
// and the pictures run once a job and may spread as they like; so may a literal in a checked folder
// that runs once a job (a communicator's wrapper, a preset, a manifest) where the comment
// `// once a job: <what>` stands on the line before it.
//
// Usage: node scripts/check-spreads.mjs [ROOT]   (ROOT defaults to the repository; it needs ROOT/src)
// Prints one line per literal (file:line) and exits 1, or prints a one-line summary and exits 0.
import path from "node:path"
import { fileURLToPath } from "node:url"
import { SyntaxKind } from "typescript/unstable/ast"
import { withSources } from "./lib/sources.mjs"

/** The folders of src/ whose code runs every step. */
export const perStepFolders = ["tensor", "native", "comm", "dataflow", "attention", "moe", "model", "pipeline", "train", "runtime"]

/** The literals of `sourceFile` that open with a spread and add members after it, as 1-based line numbers. */
export const leadingSpreads = (sourceFile) => {
  const textLines = sourceFile.text.split("\n")
  const lines = []
  const visit = (node) => {
    if (node.kind === SyntaxKind.ObjectLiteralExpression && node.properties.length > 1 && node.properties[0].kind === SyntaxKind.SpreadAssignment) {
      const line = lineOf(sourceFile.text, node.pos)
      if (!/\/\/ once a job: \S/.test(textLines[line - 2] ?? "")) lines.push(line)
    }
    node.forEachChild(visit)
  }
  visit(sourceFile)
  return lines
}

/** The 1-based line of offset `pos` (past the node's leading trivia). */
const lineOf = (text, pos) => {
  let at = pos
  while (at < text.length && /\s/.test(text[at] ?? "")) at++
  let line = 1
  for (let i = 0; i < at; i++) if (text.charCodeAt(i) === 10) line++
  return line
}

const main = () => {
  const root = path.resolve(process.argv[2] ?? path.dirname(path.dirname(fileURLToPath(import.meta.url))))
  const found = withSources(
    root,
    perStepFolders.map((f) => `src/${f}`),
    (sources) => sources.flatMap(({ rel, sourceFile }) => leadingSpreads(sourceFile).map((line) => `${rel}:${line}`)),
  )
  if (found.length > 0) {
    for (const where of found) process.stdout.write(`${where}: an object literal opens with a spread and adds members after it: write the fields out, or spread last\n`)
    process.exit(1)
  }
  process.stdout.write(`spreads: no object literal in ${perStepFolders.length} per-step folders opens with a spread and adds members\n`)
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main()
