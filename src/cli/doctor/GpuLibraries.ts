/**
 * GpuLibraries: the `cublas` and `nccl` entries of `pleat doctor`. pleat has no cuBLAS or NCCL
 * path yet (the GPU issue adds them), so both say available false with that reason; what they
 * add is where the libraries are on this machine (every file LibrarySearch finds), which is
 * what that work, and a user preparing a GPU machine, needs to know. NCCL is also looked for
 * at $PLEAT_NCCL_LIB: the file itself, or a folder holding it.
 */
import { existsSync, statSync } from "node:fs"
import path from "node:path"
import * as LibrarySearch from "./LibrarySearch.js"

/**
 * A GPU library's entry.
 * @category models
 */
export interface LibraryReport {
  readonly available: false
  readonly reason: string
  /** Every matching file found, in search order. */
  readonly found: ReadonlyArray<string>
  /** The folders searched (those that exist), in order. */
  readonly searched: ReadonlyArray<string>
}

const cublasName = /^libcublas(Lt)?\.so(\.\d+)*$/
const ncclName = /^libnccl\.so\.2(\.\d+)*$/

/**
 * The cublas entry: libcublas.so* and libcublasLt.so* in the searched folders.
 * @category constructors
 */
export const cublas = (dirs: ReadonlyArray<string>): LibraryReport => ({
  available: false,
  reason: "pleat has no cuBLAS path yet (the GPU issue adds it)",
  found: LibrarySearch.find(dirs, (name) => cublasName.test(name)),
  searched: dirs,
})

/** $PLEAT_NCCL_LIB as a folder to search first, or as a file that is found when it exists. */
const ncclOverride = (value: string | undefined): { readonly dirs: ReadonlyArray<string>; readonly files: ReadonlyArray<string> } => {
  if (value === undefined || value === "") return { dirs: [], files: [] }
  const resolved = path.resolve(value)
  try {
    return statSync(resolved).isDirectory() ? { dirs: [resolved], files: [] } : { dirs: [], files: existsSync(resolved) ? [resolved] : [] }
  } catch {
    return { dirs: [], files: [] }
  }
}

/**
 * The nccl entry: $PLEAT_NCCL_LIB, then libnccl.so.2* in the searched folders.
 * @category constructors
 */
export const nccl = (dirs: ReadonlyArray<string>, env: NodeJS.ProcessEnv): LibraryReport => {
  const override = ncclOverride(env.PLEAT_NCCL_LIB)
  const searched = [...override.dirs, ...dirs.filter((d) => !override.dirs.includes(d))]
  return {
    available: false,
    reason: "pleat has no NCCL path yet (the GPU issue adds it)",
    found: [...override.files, ...LibrarySearch.find(searched, (name) => ncclName.test(name))],
    searched,
  }
}
