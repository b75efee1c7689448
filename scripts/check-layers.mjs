#!/usr/bin/env node
// check-layers: the import rule of pleat's architecture, checked on every `npm test`.
//
// Each folder of src/ sits in one layer, and a module imports only from its own layer or the layers
// below it (docs: architecture.md; style.md section 10). Lowest first:
//
//   errors                        validation errors every layer raises (ConfigError)
//   mapping                       pure rank-group math of MoE Parallel Folding
//   tensor, native, viz           tensors and kernels; pictures of the rank grid (they draw mapping only)
//   comm                          the collective core and its backends' transports
//   dataflow                      typed operators, links and layouts
//   attention, moe                the layers' parallel algorithms
//   model, pipeline               the model's blocks; pipeline schedules as data
//   train, runtime, plan          the trainer; jobs, backends and rank hosts; the planner
//   cli, api, testing             the command line; the public API (pleat) and pleat/testing
//
// Folders of one layer may import each other, but not in a cycle (a cycle between folders is one
// concept split in two). A folder that is not in the table is itself a violation: a new folder has
// to be placed here first. src/ never imports from outside src/ (tests, benches, examples).
//
// Usage: node scripts/check-layers.mjs [ROOT]   (ROOT defaults to the repository; it needs ROOT/src)
// Prints one line per violation and exits 1, or prints a one-line summary and exits 0.
import path from "node:path"
import { fileURLToPath } from "node:url"
import { resolveRelative, toRel, withSources } from "./lib/sources.mjs"

/** The layers, lowest first; each entry lists the folders of src/ in that layer. */
export const layers = [
  ["errors"],
  ["mapping"],
  ["tensor", "native", "viz"],
  ["comm"],
  ["dataflow"],
  ["attention", "moe"],
  ["model", "pipeline"],
  ["train", "runtime", "plan"],
  ["cli", "api", "testing"],
]

const layerOf = new Map(layers.flatMap((folders, index) => folders.map((folder) => [folder, index])))

/** The folder of src/ a path (relative to the root) belongs to; a file directly in src/ is its own "folder". */
const folderOf = (rel) => {
  const parts = rel.split("/")
  return parts.length > 2 ? parts[1] : `${parts[1]}`.replace(/\.ts$/, "")
}

/** Every module under src/, and every relative import among them, resolved to the file it names. */
const importsOf = (root) =>
  withSources(root, ["src"], (sources) => ({
    modules: sources.map(({ rel }) => rel),
    edges: sources.flatMap(({ file, rel, sourceFile }) =>
      sourceFile.imports.flatMap((specifier) => {
        const target = resolveRelative(file, specifier.text)
        return target === undefined ? [] : [{ from: rel, to: toRel(root, target) }]
      }),
    ),
  }))

/** Folders that reach each other through imports (strongly connected, Tarjan), each with the edges inside it. */
const folderCycles = (edges) => {
  const graph = new Map()
  for (const e of edges) {
    if (!e.to.startsWith("src/")) continue
    const a = folderOf(e.from)
    const b = folderOf(e.to)
    if (a === b) continue
    if (!graph.has(a)) graph.set(a, new Set())
    if (!graph.has(b)) graph.set(b, new Set())
    graph.get(a).add(b)
  }
  const index = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const components = []
  let counter = 0
  const visit = (v) => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v)) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)))
    }
    if (low.get(v) === index.get(v)) {
      const component = []
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) components.push(component.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v)
  return components
}

/** The violations of the layer rule in the tree at `root`, one message each. */
export const check = (root) => {
  const { modules, edges } = importsOf(path.resolve(root))
  const problems = []
  const unplaced = new Set(modules.map(folderOf).filter((folder) => !layerOf.has(folder)))
  for (const { from, to } of edges) {
    const fromFolder = folderOf(from)
    const fromLayer = layerOf.get(fromFolder)
    if (fromLayer === undefined) continue
    if (!to.startsWith("src/")) {
      problems.push(`${from} imports ${to}: src/ may import only from src/`)
      continue
    }
    const toFolder = folderOf(to)
    const toLayer = layerOf.get(toFolder)
    if (toLayer === undefined) unplaced.add(toFolder)
    else if (toLayer > fromLayer)
      problems.push(`${from} imports ${to}: layer ${fromFolder} (${fromLayer}) may import only from layers below it, and ${toFolder} is layer ${toLayer}`)
  }
  for (const folder of [...unplaced].sort()) {
    problems.push(`src/${folder} is in no layer: place it in the table of scripts/check-layers.mjs (a folder may import only from layers below it)`)
  }
  for (const component of folderCycles(edges)) {
    const inside = edges.filter((e) => folderOf(e.from) !== folderOf(e.to) && component.includes(folderOf(e.from)) && component.includes(folderOf(e.to)))
    const examples = component.map((folder) => inside.find((e) => folderOf(e.from) === folder)).filter((e) => e !== undefined)
    problems.push(`folders ${component.join(", ")} import each other in a cycle: ${examples.map((e) => `${e.from} imports ${e.to}`).join("; ")}`)
  }
  return { problems, modules: modules.length, imports: edges.length }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? path.dirname(path.dirname(fileURLToPath(import.meta.url)))
  const { problems, modules, imports } = check(root)
  for (const line of problems) process.stdout.write(`${line}\n`)
  if (problems.length > 0) {
    process.stdout.write(`check-layers: ${problems.length} violation(s) of the layer rule\n`)
    process.exit(1)
  }
  process.stdout.write(`check-layers: ${modules} modules, ${imports} imports in src/, none upward, no cycle between folders\n`)
}
