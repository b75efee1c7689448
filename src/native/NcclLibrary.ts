/**
 * NcclLibrary: where NCCL is looked for, by `pleat doctor` and by the NCCL backend alike:
 * $PLEAT_NCCL_LIB first (the file itself, or a folder holding libnccl.so.2*), then every folder
 * LibrarySearch lists (the loader's folders, CUDA's, NVIDIA's Python wheels such as
 * nvidia-nccl-cu12 / -cu13: site-packages/nvidia/nccl/lib).
 */
import { existsSync, statSync } from "node:fs"
import path from "node:path"
import * as LibrarySearch from "./LibrarySearch.js"

const ncclName = /^libnccl\.so\.2(\.\d+)*$/

/** $PLEAT_NCCL_LIB as a folder to search first, or as a file that is found when it exists. */
const override = (value: string | undefined): { readonly dirs: ReadonlyArray<string>; readonly files: ReadonlyArray<string> } => {
  if (value === undefined || value === "") return { dirs: [], files: [] }
  const resolved = path.resolve(value)
  try {
    return statSync(resolved).isDirectory() ? { dirs: [resolved], files: [] } : { dirs: [], files: existsSync(resolved) ? [resolved] : [] }
  } catch {
    return { dirs: [], files: [] }
  }
}

/**
 * Every NCCL file found (the first is the one to load) and the folders searched, in order.
 * @category constructors
 */
export const find = (dirs: ReadonlyArray<string>, env: NodeJS.ProcessEnv): { readonly found: ReadonlyArray<string>; readonly searched: ReadonlyArray<string> } => {
  const o = override(env.PLEAT_NCCL_LIB)
  const searched = [...o.dirs, ...dirs.filter((d) => !o.dirs.includes(d))]
  return { found: [...o.files, ...LibrarySearch.find(searched, (name) => ncclName.test(name))], searched }
}
