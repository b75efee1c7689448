/**
 * Mpirun: finding the `mpirun` launcher and asking it its version. `pleat doctor` reports it;
 * `pleat launch` runs it. An explicit path (`--mpirun PATH`) is taken as given when it is an
 * executable file; otherwise each folder of PATH is tried in order, as a shell would.
 */
import { spawnSync } from "node:child_process"
import { accessSync, constants, statSync } from "node:fs"
import path from "node:path"

/**
 * mpirun as found here: its path and the first line of `mpirun --version`, or why not.
 * @category models
 */
export type MpirunInfo = { readonly found: true; readonly path: string; readonly version: string } | { readonly found: false; readonly reason: string }

/**
 * The fix for a machine without mpirun (Debian / Ubuntu packages), said wherever it is missing.
 * @category configuration
 */
export const installFix = "apt-get install openmpi-bin libopenmpi-dev, then npm run build:native"

const isExecutableFile = (file: string): boolean => {
  try {
    if (!statSync(file).isFile()) return false
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The first executable file `name` in the folders of `searchPath` (a PATH value), if any.
 * @category constructors
 */
export const findOnPath = (name: string, searchPath: string | undefined): string | undefined => {
  for (const dir of (searchPath ?? "").split(path.delimiter)) {
    if (dir === "") continue
    const candidate = path.join(dir, name)
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

/** The first line of `mpirun --version` (5 s at most: a broken install must not hang doctor). */
const versionLine = (file: string): string => {
  const run = spawnSync(file, ["--version"], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "pipe"] })
  if (run.error !== undefined) return `(--version failed: ${run.error.message})`
  const first = `${run.stdout ?? ""}${run.stderr ?? ""}`.split("\n").find((line) => line.trim() !== "")
  return first?.trim() ?? `(--version printed nothing, status ${run.status})`
}

/**
 * Finds mpirun (at `explicit` when given, else on `searchPath`) and reads its version.
 * @category constructors
 */
export const locate = (explicit: string | undefined, searchPath: string | undefined): MpirunInfo => {
  if (explicit !== undefined) {
    const file = path.resolve(explicit)
    if (!isExecutableFile(file)) return { found: false, reason: `${file} is not an executable file` }
    return { found: true, path: file, version: versionLine(file) }
  }
  const file = findOnPath("mpirun", searchPath)
  if (file === undefined) return { found: false, reason: "mpirun is not on PATH" }
  return { found: true, path: file, version: versionLine(file) }
}
