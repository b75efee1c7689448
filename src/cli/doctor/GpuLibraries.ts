/**
 * GpuLibraries: the `cublas` and `nccl` entries of `pleat doctor`. Training runs on neither yet
 * (the CUDA addon's gemm / groupedGemm load cuBLAS for the device checks; the NCCL backend is
 * to come), so both say available false with that reason; what
 * they add is where the libraries are on this machine (every file LibrarySearch finds) and what
 * the first of them is: it is loaded (GpuLibraryProbe: dlopen, no GPU needed) for its path, its
 * version and the entry points pleat will call that it lacks (NCCL's: comm/nccl/NcclApi.ts;
 * ncclCommSplit needs NCCL 2.18). NCCL is also looked for at $PLEAT_NCCL_LIB: the file
 * itself, or a folder holding it.
 */
import { existsSync, statSync } from "node:fs"
import path from "node:path"
import * as NcclApi from "../../comm/nccl/NcclApi.js"
import * as GpuLibraryProbe from "../../native/GpuLibraryProbe.js"
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
  /** The first file found, the one loaded; null when none was found. */
  readonly path: string | null
  /** Its version ("2.23.4"), null when it did not load or does not say. */
  readonly version: string | null
  /** The entry points pleat will call that it lacks. */
  readonly missing: ReadonlyArray<string>
  /** Why it did not load (the loader's message), null when it loaded or none was found. */
  readonly loadError: string | null
}

/** The cuBLAS entry points pleat's GPU path will call. */
const cublasEntryPoints = ["cublasGetProperty", "cublasCreate_v2", "cublasSetStream_v2", "cublasGemmEx", "cublasGemmStridedBatchedEx", "cublasDestroy_v2"]

/** path, version, missing and loadError of the first found file. */
const loaded = (found: ReadonlyArray<string>, kind: "nccl" | "cublas", symbols: ReadonlyArray<string>) => {
  const first = found[0]
  if (first === undefined) return { path: null, version: null, missing: [], loadError: null }
  const probed = GpuLibraryProbe.probe(first, kind, symbols)
  if (probed === undefined) return { path: first, version: null, missing: [], loadError: "the CPU addon is not built (npm run build:native)" }
  return { path: first, version: probed.version === null ? null : GpuLibraryProbe.versionText(probed.version), missing: probed.missing, loadError: probed.error }
}

const cublasName = /^libcublas(Lt)?\.so(\.\d+)*$/
const ncclName = /^libnccl\.so\.2(\.\d+)*$/

/**
 * The cublas entry: libcublas.so* and libcublasLt.so* in the searched folders.
 * @category constructors
 */
export const cublas = (dirs: ReadonlyArray<string>): LibraryReport => {
  const found = LibrarySearch.find(dirs, (name) => cublasName.test(name))
  const first = found.filter((f) => !path.basename(f).startsWith("libcublasLt"))
  return {
    available: false,
    reason: "training does not run on cuBLAS yet (the CUDA addon's gemm and groupedGemm load it: scripts/device-check)",
    found,
    searched: dirs,
    ...loaded(first, "cublas", cublasEntryPoints),
  }
}

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
  const found = [...override.files, ...LibrarySearch.find(searched, (name) => ncclName.test(name))]
  return { available: false, reason: "pleat has no NCCL backend yet (the GPU issue adds it)", found, searched, ...loaded(found, "nccl", NcclApi.ENTRY_POINTS) }
}
