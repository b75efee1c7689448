#!/usr/bin/env node
// dead-exports: the exports of src/ that no other file uses.
//
// An export is live when another file of src/, properties/, bench/, examples/ or scripts/ names it:
// `import { x }`, `export { x } from`, `Ns.x` or `Ns.x.y` after `import * as Ns` (or after importing
// a namespace that a barrel re-exports with `export * as`), `Ns.T` in a type, `import("...").x`.
// A namespace used other than by member (passed as a value, indexed by a computed key) and a module
// imported dynamically or named by `new URL("./M.js", import.meta.url)` (worker and rank-program
// entry points, looked up by name at run time) count as using every export of that module, and a
// string passed beside `import.meta.url` (a module naming its own export for such a loader) uses
// the export of that name; a module that exports its own `import.meta.url` is such an entry point.
// Imports by the package's own name (`from "pleat"`, `from "pleat/testing"`, as examples and users write
// them) resolve to the public entry points' sources (package.json `exports`, "pleat-source"), whose
// exports, with the barrels they re-export as namespaces, are live: users import them.
// Uses inside the exporting file itself do not count (such an export only needs to lose `export`),
// except that an exported type or class which the file's other exports mention lives with them.
//
// Usage: node scripts/dead-exports.mjs [ROOT]   Prints `src/x/File.ts: name` per dead export and
// exits 1 if there is any, else prints a one-line summary and exits 0.
import { readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { SyntaxKind } from "typescript/unstable/ast"
import { resolveRelative, withSources } from "./lib/sources.mjs"

const folders = ["src", "properties", "bench", "examples", "scripts"]

const hasModifier = (node, kind) => (node.modifiers ?? []).some((m) => m.kind === kind)

/** What a module exports: its own names, namespace re-exports, named re-exports, star re-exports. */
const exportsOf = (file, sourceFile) => {
  const own = new Set()
  const namespaces = new Map() // exported name -> module file (`export * as name from`)
  const renamed = new Map() // exported name -> { module, name } (`export { name } from`)
  const stars = [] // module files (`export * from`)
  for (const statement of sourceFile.statements) {
    if (statement.kind === SyntaxKind.ExportDeclaration) {
      const target = statement.moduleSpecifier === undefined ? undefined : resolveRelative(file, statement.moduleSpecifier.text)
      const clause = statement.exportClause
      if (clause === undefined) {
        if (target !== undefined) stars.push(target)
      } else if (clause.kind === SyntaxKind.NamespaceExport) {
        if (target !== undefined) namespaces.set(clause.name.text, target)
      } else {
        for (const element of clause.elements) {
          const name = element.name.text
          if (target === undefined) own.add(name)
          else renamed.set(name, { module: target, name: (element.propertyName ?? element.name).text })
        }
      }
    } else if (statement.kind === SyntaxKind.ExportAssignment) own.add("default")
    else if (hasModifier(statement, SyntaxKind.ExportKeyword)) {
      if (hasModifier(statement, SyntaxKind.DefaultKeyword)) own.add("default")
      else if (statement.kind === SyntaxKind.VariableStatement) {
        for (const d of statement.declarationList.declarations) if (d.name.kind === SyntaxKind.Identifier) own.add(d.name.text)
      } else if (statement.name !== undefined) own.add(statement.name.text)
    }
  }
  return { own, namespaces, renamed, stars, signatureTypes: typesInExportedSignatures(sourceFile) }
}

/**
 * The exported interfaces, type aliases and classes that the file's other exports mention: callers
 * need them to name what those exports take and return (or throw), so they are live with them.
 */
const typesInExportedSignatures = (sourceFile) => {
  const typeKinds = new Set([SyntaxKind.InterfaceDeclaration, SyntaxKind.TypeAliasDeclaration, SyntaxKind.ClassDeclaration])
  const exported = sourceFile.statements.filter((s) => hasModifier(s, SyntaxKind.ExportKeyword))
  const typeNames = new Set(exported.filter((s) => typeKinds.has(s.kind)).map((s) => s.name.text))
  const mentioned = new Set()
  for (const statement of exported) {
    const own = typeKinds.has(statement.kind) ? statement.name.text : undefined
    const visit = (node) => {
      if (node.kind === SyntaxKind.Identifier && typeNames.has(node.text) && node.text !== own) mentioned.add(node.text)
      node.forEachChild(visit)
    }
    visit(statement)
  }
  return mentioned
}

const isImportMetaUrl = (node) => node.kind === SyntaxKind.PropertyAccessExpression && node.expression.kind === SyntaxKind.MetaProperty && node.name.text === "url"

/** The source files of the package's public entry points: package.json `exports` by "pleat-source". */
const publicEntries = (root) => {
  let manifest
  try {
    manifest = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"))
  } catch {
    return []
  }
  return Object.entries(manifest.exports ?? {}).flatMap(([subpath, entry]) => {
    const source = typeof entry === "object" && entry !== null ? entry["pleat-source"] : undefined
    return typeof source === "string" ? [{ specifier: path.posix.join(manifest.name, subpath), rel: source.replace(/^\.\//, "") }] : []
  })
}

/** Finds every dead export of src/ in the tree at `root`. */
export const deadExports = (root) =>
  withSources(root, folders, (sources) => {
    const modules = new Map(sources.map((s) => [s.file, exportsOf(s.file, s.sourceFile)]))
    // `import ... from "pleat"` (examples, users' style) names the public entry point's source.
    const entries = publicEntries(root)
    const fileOfRel = new Map(sources.map((s) => [s.rel, s.file]))
    const publicModules = new Map(entries.map((e) => [e.specifier, fileOfRel.get(e.rel)]))
    const used = new Map() // module file -> Set of names used from outside
    const everything = new Set() // module files whose every export counts as used

    const mark = (module, name, seen = new Set()) => {
      const key = `${module}\0${name}`
      if (seen.has(key)) return
      seen.add(key)
      if (!used.has(module)) used.set(module, new Set())
      used.get(module).add(name)
      const m = modules.get(module)
      if (m === undefined) return
      const forward = m.renamed.get(name)
      if (forward !== undefined) mark(forward.module, forward.name, seen)
      if (!m.own.has(name) && !m.namespaces.has(name) && forward === undefined) for (const star of m.stars) mark(star, name, seen)
    }
    /** The module a name exported by `module` stands for, when it is a namespace (`export * as`). */
    const namespaceBehind = (module, name) => {
      const m = modules.get(module)
      if (m === undefined) return undefined
      if (m.namespaces.has(name)) return m.namespaces.get(name)
      const forward = m.renamed.get(name)
      return forward === undefined ? undefined : namespaceBehind(forward.module, forward.name)
    }
    const markAll = (module) => everything.add(module)

    for (const { file, sourceFile } of sources) {
      const namespaceBindings = new Map() // local identifier -> module file
      for (const specifier of sourceFile.imports) {
        const target = resolveRelative(file, specifier.text) ?? publicModules.get(specifier.text)
        if (target === undefined || target === file) continue
        const parent = specifier.parent
        if (parent.kind === SyntaxKind.ImportDeclaration) {
          const clause = parent.importClause
          if (clause === undefined) continue
          if (clause.name !== undefined) mark(target, "default")
          const bindings = clause.namedBindings
          if (bindings === undefined) continue
          if (bindings.kind === SyntaxKind.NamespaceImport) namespaceBindings.set(bindings.name.text, target)
          else
            for (const element of bindings.elements) {
              const name = (element.propertyName ?? element.name).text
              mark(target, name)
              const behind = namespaceBehind(target, name)
              if (behind !== undefined) namespaceBindings.set(element.name.text, behind)
            }
        } else if (parent.kind === SyntaxKind.ExportDeclaration) {
          const clause = parent.exportClause
          if (clause !== undefined && clause.kind === SyntaxKind.NamedExports) for (const element of clause.elements) mark(target, (element.propertyName ?? element.name).text)
        } else if (parent.kind === SyntaxKind.LiteralType && parent.parent.kind === SyntaxKind.ImportType) {
          let qualifier = parent.parent.qualifier
          while (qualifier?.kind === SyntaxKind.QualifiedName) qualifier = qualifier.left
          if (qualifier === undefined) markAll(target)
          else mark(target, qualifier.text)
        } else markAll(target) // import("...") at run time
      }

      /** The member chain `a.b.c` that starts at identifier `node`, as its names after `a`. */
      const memberChain = (node) => {
        const names = []
        let at = node
        for (;;) {
          const p = at.parent
          if (p.kind === SyntaxKind.PropertyAccessExpression && p.expression === at) names.push(p.name.text)
          else if (p.kind === SyntaxKind.QualifiedName && p.left === at) names.push(p.right.text)
          else break
          at = p
        }
        return names
      }
      const isDeclarationOrMemberName = (node) => {
        const p = node.parent
        if (p === undefined) return true
        switch (p.kind) {
          case SyntaxKind.ImportSpecifier:
          case SyntaxKind.NamespaceImport:
          case SyntaxKind.ImportClause:
            return true
          case SyntaxKind.PropertyAccessExpression:
            return p.name === node
          case SyntaxKind.QualifiedName:
            return p.right === node
          default:
            return false
        }
      }
      const visit = (node) => {
        if (node.kind === SyntaxKind.Identifier && namespaceBindings.has(node.text) && !isDeclarationOrMemberName(node)) {
          let module = namespaceBindings.get(node.text)
          const chain = memberChain(node)
          if (chain.length === 0) markAll(module)
          for (const name of chain) {
            mark(module, name)
            module = namespaceBehind(module, name)
            if (module === undefined) break
          }
        }
        if (node.kind === SyntaxKind.NewExpression && node.expression.kind === SyntaxKind.Identifier && node.expression.text === "URL") {
          const first = node.arguments?.[0]
          if (first?.kind === SyntaxKind.StringLiteral || first?.kind === SyntaxKind.NoSubstitutionTemplateLiteral) {
            const target = resolveRelative(file, first.text)
            if (target !== undefined) markAll(target)
          }
        }
        // `RankProgram.make(import.meta.url, "program", args)`: a module naming its own export for a
        // loader that imports it by URL and picks the export by that name.
        if (node.kind === SyntaxKind.CallExpression && (node.arguments ?? []).some(isImportMetaUrl)) {
          for (const argument of node.arguments) if (argument.kind === SyntaxKind.StringLiteral) mark(file, argument.text)
        }
        // `export const moduleUrl = import.meta.url`: a module that publishes its own URL is loaded by
        // it, and its exports picked by name elsewhere.
        if (node.kind === SyntaxKind.VariableDeclaration && node.initializer !== undefined && isImportMetaUrl(node.initializer)) {
          const statement = node.parent?.parent
          if (statement !== undefined && hasModifier(statement, SyntaxKind.ExportKeyword)) markAll(file)
        }
        node.forEachChild(visit)
      }
      visit(sourceFile)
    }

    // The package's public entry points (package.json `exports`, by their "pleat-source" files)
    // and the barrels they re-export as namespaces (index.ts) are what users import: every export
    // of them is live. The modules behind the barrels still need a user in the tree per export.
    const byRel = new Map(sources.map((s) => [s.rel, s.file]))
    const publicBarrel = (file) => {
      if (file === undefined || everything.has(file)) return
      markAll(file)
      for (const target of modules.get(file)?.namespaces.values() ?? []) if (path.basename(target) === "index.ts") publicBarrel(target)
    }
    for (const { rel } of entries) publicBarrel(byRel.get(rel))

    const dead = []
    let total = 0
    for (const { file, rel } of sources) {
      if (!rel.startsWith("src/")) continue
      const m = modules.get(file)
      const names = [...m.own, ...m.namespaces.keys(), ...m.renamed.keys()]
      total += names.length
      if (everything.has(file)) continue
      const usedHere = used.get(file) ?? new Set()
      for (const name of names.sort()) if (!usedHere.has(name) && !m.signatureTypes.has(name)) dead.push({ file: rel, name })
    }
    return { dead, total }
  })

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.dirname(path.dirname(fileURLToPath(import.meta.url))))
  const { dead, total } = deadExports(root)
  for (const { file, name } of dead) process.stdout.write(`${file}: ${name}\n`)
  if (dead.length > 0) {
    process.stdout.write(`dead-exports: ${dead.length} of ${total} exports of src/ are used by no other file\n`)
    process.exit(1)
  }
  process.stdout.write(`dead-exports: all ${total} exports of src/ are used by another file\n`)
}
