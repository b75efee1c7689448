/**
 * OutputPath: a file or folder a command will write (a picture, a trace, a checkpoint), checked
 * when the command starts.
 *
 * The path must name a file (not a directory, not a path ending in `/`) in a place a file can
 * be created: the nearest folder on its way that exists is a writable directory (missing
 * folders below it are created, as the command's Io does) on a real file system, not a
 * kernel pseudo-file system such as /proc or /sys. Each problem is one ConfigError naming the
 * flag and the path, found before any work. A write that still fails (a disk full, a race)
 * is the same one-line problem with the system's code, never a stack.
 */
import { accessSync, constants, existsSync, realpathSync, statfsSync, statSync } from "node:fs"
import path from "node:path"
import * as ConfigError from "../errors/ConfigError.js"
import type { Io } from "./Io.js"

/** Kernel pseudo-file systems (statfs magic numbers): nothing a user means to keep goes there. */
const pseudoFileSystems: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x1cd1, "devpts"],
  [0x6165676c, "pstore"],
  [0xcafe4a11, "bpf"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
  [0x65735543, "fusectl"],
  [0x42494e4d, "binfmt_misc"],
])

/** The nearest path at or above `target` that exists. */
const existingAncestor = (target: string): string => {
  let at = target
  while (!existsSync(at)) at = path.dirname(at)
  return at
}

const fix = "pass the path of a file in a directory you can write"

/** What a command creates at its output path: the fix names it. */
export type Kind = "file" | "folder"

const fixFor = (kind: Kind): string => (kind === "file" ? fix : "pass the path of a folder in a directory you can write")

/** The statfs type of the file system holding `folder`, or -1 where the platform cannot say. */
const fileSystemType = (folder: string): number => {
  try {
    return statfsSync(folder).type
  } catch {
    return -1
  }
}

/**
 * Why nothing can be created at `target` (a file or, `kind` "folder", a folder) as a ConfigError
 * naming `field`: the nearest folder on its way that exists is not a writable directory on a real
 * file system.
 * @category guards
 */
export const placeProblem = (field: string, target: string, kind: Kind = "file"): ConfigError.ConfigError | undefined => {
  const folder = existingAncestor(path.dirname(path.resolve(target)))
  const problem = (why: string) => ConfigError.make(field, target, `cannot be written (${why})`, fixFor(kind))
  if (!statSync(folder).isDirectory()) return problem(`${folder} is a file, not a directory`)
  try {
    accessSync(folder, constants.W_OK)
  } catch {
    return problem(`${folder} is not writable`)
  }
  const pseudo = pseudoFileSystems.get(fileSystemType(folder))
  if (pseudo !== undefined) return problem(`${folder} is on the ${pseudo} pseudo-file system`)
  return undefined
}

/**
 * Why `target` cannot be written as a file, as a ConfigError naming `field`; undefined when it can.
 * @category guards
 */
export const fileProblem = (field: string, target: string): ConfigError.ConfigError | undefined => {
  if (/[\\/]$/.test(target) || target === "." || target === "..") return ConfigError.make(field, target, "names a directory (it ends with a separator)", fix)
  if (existsSync(target) && statSync(target).isDirectory()) return ConfigError.make(field, target, "is a directory", fix)
  return placeProblem(field, target)
}

/** A path as the file system resolves it (links followed where it exists). */
const resolved = (file: string): string => {
  try {
    return realpathSync(file)
  } catch {
    return path.resolve(file)
  }
}

/**
 * Why `target` must not be written: it is one of the files the command reads (`inputs`, by the
 * flag that names each; by any path or link to it), which the write would replace.
 * @category guards
 */
export const inputProblem = (field: string, target: string, inputs: ReadonlyArray<readonly [string, string | undefined]>): ConfigError.ConfigError | undefined => {
  const read = inputs.find(([, file]) => file !== undefined && resolved(file) === resolved(target))
  return read === undefined ? undefined : ConfigError.make(field, target, `is the file ${read[0]} reads (writing it would replace it)`, "write to a file of its own")
}

/**
 * Throws the problem of `target`, if any.
 * @category constructors
 */
export const check = (field: string, target: string): void => {
  const found = fileProblem(field, target)
  if (found !== undefined) throw found
}

/**
 * Writes `text` to `target` through `io`; a failure is one ConfigError naming `field`.
 * @category constructors
 */
export const write = (io: Io, field: string, target: string, text: string | Iterable<string>): void => {
  try {
    io.writeFile(target, text)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error))
    throw ConfigError.make(field, target, `cannot be written (${code})`, fix)
  }
}

/**
 * Whether path `inner` is `outer` or lies below it (both as given: resolve them first).
 * @category guards
 */
export const isWithin = (inner: string, outer: string): boolean => inner === outer || inner.startsWith(`${outer}${path.sep}`)
