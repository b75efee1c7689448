// The TypeScript sources of a tree, parsed by the compiler that the project already installs
// (node_modules/typescript, whose API runs the native compiler as a child process).
//
// The guardrail scripts (check-layers, dead-exports) read syntax only: which module imports which,
// what each file exports. So the project they open is a virtual tsconfig served from memory,
// with noResolve and no libraries: only the named folders are parsed, nothing is type-checked,
// and the tree need not have a tsconfig.json or node_modules (a temporary copy of src/ works).
import { existsSync } from "node:fs"
import path from "node:path"
import { API } from "typescript/unstable/sync"

const virtualConfigName = "tsconfig.guardrails.json"

/**
 * Parses every .ts file under `folders` (relative to `root`) and hands them to `use`, as
 * `{ file, rel, sourceFile }` (absolute path, path relative to root with forward slashes, AST).
 * The compiler process is closed when `use` returns.
 */
export const withSources = (root, folders, use) => {
  const absoluteRoot = path.resolve(root)
  const configFile = path.join(absoluteRoot, virtualConfigName)
  const include = folders.filter((f) => existsSync(path.join(absoluteRoot, f))).map((f) => `${f}/**/*.ts`)
  const config = JSON.stringify({
    compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", noResolve: true, noLib: true, types: [], noEmit: true },
    include,
  })
  const api = new API({
    cwd: absoluteRoot,
    fs: {
      readFile: (f) => (path.resolve(f) === configFile ? config : undefined),
      fileExists: (f) => (path.resolve(f) === configFile ? true : undefined),
    },
  })
  try {
    const snapshot = api.updateSnapshot({ openProjects: [configFile] })
    const project = snapshot.getProjects()[0]
    if (project === undefined) throw new Error(`the compiler opened no project for ${absoluteRoot}`)
    const sources = project.program
      .getSourceFileNames()
      .map((file) => path.resolve(file))
      .filter((file) => file.startsWith(absoluteRoot + path.sep) && !file.includes(`${path.sep}node_modules${path.sep}`))
      .sort()
      .map((file) => ({ file, rel: toRel(absoluteRoot, file), sourceFile: project.program.getSourceFile(file) }))
    return use(sources)
  } finally {
    api.close()
  }
}

/** `file` relative to `root`, with forward slashes (the form every message prints). */
export const toRel = (root, file) => path.relative(root, file).split(path.sep).join("/")

/**
 * The file a relative import specifier names, as the compiler would find it under NodeNext
 * (`./X.js` is the source `./X.ts`; a folder means its index.ts). An import of the build, `dist/X.js`
 * (the bench times the compiled code), names its source `src/X.ts`. `undefined` for bare
 * specifiers (packages, node: builtins).
 */
export const resolveRelative = (fromFile, specifier) => {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined
  const resolved = path.resolve(path.dirname(fromFile), specifier)
  const parts = resolved.split(path.sep)
  const built = parts.lastIndexOf("dist")
  const target = built > 0 && !parts.includes("node_modules") ? [...parts.slice(0, built), "src", ...parts.slice(built + 1)].join(path.sep) : resolved
  const candidates = [target.replace(/\.js$/, ".ts").replace(/\.mjs$/, ".mts"), `${target}.ts`, path.join(target, "index.ts"), target]
  return candidates.find((c) => existsSync(c)) ?? candidates[0]
}
