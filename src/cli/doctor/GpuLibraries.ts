/**
 * GpuLibraries: the `cublas` and `nccl` entries of `pleat doctor`: where the libraries are on
 * this machine (every file LibrarySearch finds) and what the first of them is: it is loaded
 * (GpuLibraryProbe: dlopen, no GPU needed) for its path, its version and the entry points
 * pleat calls that it lacks (NCCL's: comm/nccl/NcclApi.ts, NCCL 2.7 or later). NCCL is looked
 * for as the NCCL backend looks for it (NcclLibrary: $PLEAT_NCCL_LIB first, the file itself or
 * a folder holding it). nccl is available when that file loads with every entry point and CUDA
 * sees a GPU (`--backend nccl` then runs); cublas likewise when it loads whole and there is a GPU
 * (`--device cuda` then runs; the CUDA runtime looks for it the same way: CublasLibrary).
 */
import path from "node:path"
import * as NcclApi from "../../comm/nccl/NcclApi.js"
import * as CublasLibrary from "../../native/CublasLibrary.js"
import * as GpuLibraryProbe from "../../native/GpuLibraryProbe.js"
import * as NcclLibrary from "../../native/NcclLibrary.js"

/**
 * A GPU library's entry.
 * @category models
 */
export interface LibraryReport {
  readonly available: boolean
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

/**
 * Whether the first file serves (found, loads, has every entry point, and a GPU is there) and
 * why not, in the first of these that fails; `lacks` follows the list of missing entry points.
 */
const verdict = (
  first: ReturnType<typeof loaded>,
  gpu: boolean,
  say: { readonly missing: string; readonly lacks: string; readonly noGpu: string; readonly ok: string },
): { readonly available: boolean; readonly reason: string } => {
  const reason =
    first.path === null
      ? say.missing
      : first.loadError !== null
        ? `${first.path} does not load: ${first.loadError}`
        : first.missing.length > 0
          ? `${first.path} lacks ${first.missing.join(", ")}${say.lacks}`
          : !gpu
            ? say.noGpu
            : say.ok
  return { available: first.path !== null && first.loadError === null && first.missing.length === 0 && gpu, reason }
}

/**
 * The cublas entry: libcublas.so* and libcublasLt.so* in the searched folders; available when the
 * first cuBLAS file loads with every entry point pleat calls and CUDA sees a GPU
 * (`pleat train --device cuda` then runs its products on it).
 * @category constructors
 */
export const cublas = (dirs: ReadonlyArray<string>, gpu: boolean): LibraryReport => {
  const found = CublasLibrary.files(dirs)
  const first = loaded(
    found.filter((f) => !path.basename(f).startsWith("libcublasLt")),
    "cublas",
    cublasEntryPoints,
  )
  const { available, reason } = verdict(first, gpu, {
    missing: "no libcublas.so found (pip install nvidia-cublas-cu12, or set PLEAT_CUBLAS_LIB to the file)",
    lacks: "",
    noGpu: "cuBLAS loads, but CUDA sees no GPU here (--device cuda needs one)",
    ok: "--device cuda runs its products on it",
  })
  return { available, reason, found, searched: dirs, ...first }
}

/**
 * The nccl entry: $PLEAT_NCCL_LIB, then libnccl.so.2* in the searched folders.
 * @category constructors
 */
export const nccl = (dirs: ReadonlyArray<string>, env: NodeJS.ProcessEnv, gpu: boolean): LibraryReport => {
  const { found, searched } = NcclLibrary.find(dirs, env)
  const first = loaded(found, "nccl", NcclApi.ENTRY_POINTS)
  const { available, reason } = verdict(first, gpu, {
    missing: "no libnccl.so.2 found (pip install nvidia-nccl-cu12, or set PLEAT_NCCL_LIB to the file)",
    lacks: " (pleat needs NCCL 2.7 or later)",
    noGpu: "NCCL loads, but CUDA sees no GPU here (--backend nccl needs one per rank)",
    ok: "--backend nccl runs on it",
  })
  return { available, reason, found, searched, ...first }
}
