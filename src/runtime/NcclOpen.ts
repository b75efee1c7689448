/**
 * NcclOpen: NCCL for this process, opened once: the first library NcclLibrary finds
 * ($PLEAT_NCCL_LIB, then the loader's, CUDA's and NVIDIA's Python wheels' folders) loaded into
 * pleat_cuda.node, and the rank's GPU chosen (the launcher's local rank modulo the devices; the
 * host stand-in uses none). Every way it can fail is a ConfigError naming what is missing and
 * the fix.
 */
import type * as NcclEngine from "../comm/nccl/NcclEngine.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as Cuda from "../native/Cuda.js"
import * as LibrarySearch from "../native/LibrarySearch.js"
import * as Nccl from "../native/Nccl.js"
import * as NcclLibrary from "../native/NcclLibrary.js"
import * as ProcessGpu from "./ProcessGpu.js"

let opened: NcclEngine.Opened | undefined

const problem = (value: string, reason: string, fix: string) => ConfigError.make("--backend", value, reason, fix)

/**
 * NCCL opened in this process (the first call loads it). Throws a ConfigError.
 * @category constructors
 */
export const open = (env: NodeJS.ProcessEnv = process.env): NcclEngine.Opened => {
  if (opened !== undefined) return opened
  const { found, searched } = NcclLibrary.find(LibrarySearch.searchDirs(env), env)
  const file = found[0]
  if (file === undefined)
    throw problem(
      "nccl",
      `found no libnccl.so.2 (searched ${searched.length} folders: ${searched.slice(0, 6).join(", ")}${searched.length > 6 ? ", ..." : ""})`,
      "install NCCL (pip install nvidia-nccl-cu12, or your distribution's libnccl2) or set PLEAT_NCCL_LIB to the file; pleat doctor lists where it looked",
    )
  let native: Nccl.Native
  try {
    native = Nccl.native()
  } catch (error) {
    throw problem("nccl", `needs the CUDA addon: ${error instanceof Error ? error.message : String(error)}`, "install the CUDA toolkit (nvcc) and rerun npm ci")
  }
  let loaded: Nccl.Loaded
  try {
    loaded = native.load(file)
  } catch (error) {
    throw problem("nccl", error instanceof Error ? error.message : String(error), "point PLEAT_NCCL_LIB at NCCL 2.7 or later")
  }
  let device = -1
  if (!loaded.hostMemory) {
    const status = Cuda.cudaStatus()
    if (!status.available) throw problem("nccl", `needs a GPU, and CUDA says: ${status.detail}`, "run on a machine with a GPU and its driver, or use --backend mpi")
    device = ProcessGpu.select(env) ?? 0
  }
  opened = { native, loaded, device }
  return opened
}
